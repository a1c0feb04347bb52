"""The suite runs on the real services: guard against it silently falling back to SQLite."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_on_postgresql():
    assert connection.vendor == "postgresql"
    assert connection.settings_dict["NAME"].startswith("test_acumos_")


def test_env_example_documents_every_setting_the_portal_reads():
    """.env.example is the list of what can be set: a setting read from the environment is in it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'env_[a-z]+\("([A-Z0-9_]+)"', (root / "acumos_portal" / "settings.py").read_text()))
    documented = set(re.findall(r"^#([A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
    assert read and not read - documented

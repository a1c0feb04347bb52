"""The suite runs on the real services: guard against it silently falling back to SQLite."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_on_postgresql():
    assert connection.vendor == "postgresql"
    assert connection.settings_dict["NAME"].startswith("test_acumos_")

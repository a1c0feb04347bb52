"""`manage.py bootstrap` (what `make run` runs) never writes the demo admin's password into its output,
which ends in logs: a generated one goes to a file only its owner may read."""

from __future__ import annotations

import io
import os
import pty
import stat

import pytest
from django.core.management import call_command

from acumos_portal.accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path
    monkeypatch.delenv("ACUMOS_ADMIN_PASSWORD", raising=False)
    return tmp_path


def bootstrap(stdout=None) -> str:
    out = stdout or io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue() if isinstance(out, io.StringIO) else ""


def test_a_generated_password_goes_to_an_owner_only_file_and_never_to_the_output(data_dir):
    output = bootstrap()

    path = data_dir / "admin-password"
    password = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.getuid()
    assert User.objects.get(username="admin").check_password(password)
    assert password not in output
    assert f"demo admin: user 'admin', password in {path} (readable by its owner only)" in output
    assert "exists" in bootstrap()  # run again: nothing changes, nothing is shown
    assert path.read_text().strip() == password


def test_a_file_or_link_put_there_first_is_replaced_not_followed(data_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "target"
    elsewhere.write_text("keep me")
    (data_dir / "admin-password").symlink_to(elsewhere)

    bootstrap()

    path = data_dir / "admin-password"
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "keep me"
    assert User.objects.get(username="admin").check_password(path.read_text().strip())


def test_a_password_from_the_environment_is_never_echoed(data_dir, monkeypatch):
    monkeypatch.setenv("ACUMOS_ADMIN_PASSWORD", "Env-given-canary-123")
    output = bootstrap()

    assert User.objects.get(username="admin").check_password("Env-given-canary-123")
    assert "Env-given-canary-123" not in output and "password from ACUMOS_ADMIN_PASSWORD" in output
    assert not (data_dir / "admin-password").exists()
    monkeypatch.setenv("ACUMOS_ADMIN_PASSWORD", "Another-canary-456")
    changed = bootstrap()  # a new one replaces it, still unsaid
    assert "Another-canary-456" not in changed
    assert User.objects.get(username="admin").check_password("Another-canary-456")


def read_all(main: int) -> str:
    """Everything written to the terminal: a pty hands it out in pieces (one read may stop at a line)."""
    chunks = []
    try:
        while chunk := os.read(main, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the terminal's other side is closed and everything was read
        pass
    finally:
        os.close(main)
    return b"".join(chunks).decode()


def test_on_a_terminal_the_generated_password_is_shown_once(data_dir):
    main, side = pty.openpty()
    with os.fdopen(side, "w") as terminal:
        bootstrap(stdout=terminal)
    shown = read_all(main)

    password = (data_dir / "admin-password").read_text().strip()
    assert shown.count(password) == 1 and "shown once" in shown


def welcome() -> str:
    out = io.StringIO()
    call_command("welcome", stdout=out)
    return out.getvalue()


def test_the_welcome_says_where_the_generated_password_is_without_showing_it(data_dir, monkeypatch):
    monkeypatch.setenv("ACUMOS_WEB_BIND", "127.0.0.1:8765")
    bootstrap()
    said = welcome()

    path = data_dir / "admin-password"
    assert "portal: http://127.0.0.1:8765" in said
    assert f"sign in as: admin, with the password in {path}" in said
    assert path.read_text().strip() not in said
    assert "adopts them" in said  # runners outlive a stop, and the newcomer is told


def test_the_welcome_names_the_environment_password_and_a_rerun_with_it_says_unchanged(data_dir, monkeypatch):
    monkeypatch.setenv("ACUMOS_ADMIN_PASSWORD", "Env-given-canary-123")
    bootstrap()

    assert "(unchanged)" in bootstrap() and "set ACUMOS_ADMIN_PASSWORD to reset" not in bootstrap()
    said = welcome()
    assert "password in ACUMOS_ADMIN_PASSWORD" in said and "Env-given-canary-123" not in said

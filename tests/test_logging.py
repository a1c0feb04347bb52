"""What the portal's console says: errors and warnings, not a line per background task that went well."""

from __future__ import annotations

import logging

import pytest

from acumos_portal import jobs


@pytest.mark.django_db
def test_a_task_that_succeeds_says_nothing_and_one_that_fails_says_why(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="acumos_portal")
    jobs.task_named("acumos_portal.reap_jobs").apply()
    assert not [record for record in caplog.records if record.name == "celery.app.trace"]

    def broken(**kwargs):
        raise RuntimeError("the reaper tripped")

    monkeypatch.setattr(jobs, "reap_all", broken)
    jobs.task_named("acumos_portal.reap_jobs").apply()
    failures = [record for record in caplog.records if record.name == "celery.app.trace"]
    assert failures and failures[0].levelno >= logging.ERROR and "the reaper tripped" in failures[0].getMessage()

"""The batch app's settings, read where the test's or the site's settings say now (acumos_portal.settings holds
them, from the environment, with their defaults and what each is for)."""

from __future__ import annotations

from django.conf import settings


def get(name: str):
    return getattr(settings, name)

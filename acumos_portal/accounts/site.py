"""The site's name and logo, as every page's top bar shows them.

They come from the SiteSettings row (an admin edits it), else from settings.SITE_NAME, and are kept
in Django's cache so that a page costs no query for them. Whoever saves the settings calls
`forget_site()`; saving through the ORM also does it (the receivers below), as a safety net."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.http import FileResponse, Http404
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET

from acumos_portal.accounts.models import SiteSettings

CACHE_KEY = "acumos-portal:site"
# A per-process cache (the default LocMemCache) is not told when another process saves the
# settings: a change reaches every process within this many seconds.
CACHE_SECONDS = 60
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Site:
    name: str
    logo_url: str = ""


def current_site() -> Site:
    site = cache.get(CACHE_KEY)
    if site is None:
        site = _read_site()
        cache.set(CACHE_KEY, site, CACHE_SECONDS)
    return site


def forget_site() -> None:
    cache.delete(CACHE_KEY)


def _read_site() -> Site:
    # filter().first(), not SiteSettings.current(): showing a page never writes a row.
    row = SiteSettings.objects.filter(pk=1).first()
    if row is None:
        return Site(name=settings.SITE_NAME)
    return Site(name=row.site_name.strip() or settings.SITE_NAME, logo_url=_logo_url(row))


def _logo_url(row: SiteSettings) -> str:
    """The `logo` view's address, changing with each upload (so it may be cached long); the storage's
    own URL where that view is not routed."""
    if not row.logo:
        return ""
    try:
        return f"{reverse('site-logo')}?v={int(row.modified.timestamp())}"
    except NoReverseMatch:
        pass
    try:
        return row.logo.url
    except (ValueError, NotImplementedError):  # a storage that cannot give URLs: show the default mark
        return ""


@require_GET
def logo(request):
    """The uploaded logo, from whichever storage holds it. Public: it is in every page's top bar.
    Served so that even an SVG opened on its own can run nothing."""
    row = SiteSettings.objects.filter(pk=1).first()
    if row is None or not row.logo:
        raise Http404("no logo")
    content_type = LOGO_TYPES.get(PurePosixPath(row.logo.name).suffix.lower(), "application/octet-stream")
    response = FileResponse(row.logo.open("rb"), content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "public, max-age=86400"
    return response


def _forget_on_change(sender, **kwargs) -> None:
    forget_site()


# Connected when this module is first imported, which is before anything could be cached.
post_save.connect(_forget_on_change, sender=SiteSettings, dispatch_uid="acumos-site-saved")
post_delete.connect(_forget_on_change, sender=SiteSettings, dispatch_uid="acumos-site-deleted")

"""What every page's layout (templates/base.html) needs."""

from __future__ import annotations

from django.conf import settings
from django.utils.functional import SimpleLazyObject

from acumos_portal.accounts.site import current_site
from marketplace import selectors

# Which top-bar link a page belongs to, by the start of its URL name.
_NAV_SECTIONS = (
    ("marketplace:browse", "marketplace"),
    ("marketplace:model", "marketplace"),
    ("marketplace:my-models", "my-models"),
    ("marketplace:revision", "my-models"),
    ("marketplace:manage", "manage"),
    ("marketplace:notifications", "notifications"),
    ("onboarding:", "onboarding"),
    ("deployment:", "deployments"),
)


def site(request):
    found = current_site()
    context = {"SITE_NAME": found.name, "SITE_LOGO_URL": found.logo_url, "NAV_SECTION": nav_section(request)}
    user = getattr(request, "user", None)
    if selectors.signed_in(user):
        # Lazy: a page that shows no bell or no Manage link (an htmx partial) asks nothing.
        context["UNREAD_COUNT"] = SimpleLazyObject(lambda: selectors.unread_count(user))
        context["IS_PUBLISHER"] = SimpleLazyObject(lambda: selectors.is_publisher(user))
    else:
        context["SIGNUP_OPEN"] = settings.ACUMOS_SIGNUP_OPEN  # the top bar offers it beside Sign in
    return context


def nav_section(request) -> str:
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match else ""
    return next((section for prefix, section in _NAV_SECTIONS if view_name.startswith(prefix)), "")

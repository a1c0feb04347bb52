from django.contrib import admin
from django.urls import include, path

from acumos_portal.accounts import site

# A busy database or a full disk is not a bug: 503 or 507 saying so, not the 500 page.
handler500 = "acumos_portal.capacity.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("site/logo/", site.logo, name="site-logo"),
    path("accounts/", include("acumos_portal.accounts.urls")),
    path("onboarding/", include("onboarding.urls")),
    path("api/v1/", include("acumos_portal.api.urls")),
    path("onboarding-app/v2/", include("onboarding.api.acumos_urls")),
    # The peer API: peers reach it through the federation TLS terminator only (federation.authentication).
    path("federation/", include("federation.api.urls")),
    # Peers, grants and subscriptions: the site's admins' pages.
    path("site/federation/", include("federation.urls")),
    # Licences: a model's licence and access to it, the licensor's requests, agreements and usage.
    path("licensing/", include("licensing.urls")),
    path("", include("images.urls")),
    path("", include("deployment.urls")),
    path("", include("monitoring.urls")),  # a deployment's charts and alerts (its page loads them)
    path("", include("discovery.urls")),  # find a model by requirement
    path("", include("batch.urls")),  # batch jobs: the list, a job's progress, its outputs
    path("", include("pages.urls")),
]

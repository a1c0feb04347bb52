"""The native REST API, /api/v1/: marketplace, onboarding jobs, API tokens, and its OpenAPI schema
(/api/v1/schema/) and docs page (/api/v1/docs/, assets from drf-spectacular-sidecar, no CDN)."""

from csp.decorators import csp_update
from django.http import JsonResponse
from django.urls import Resolver404, include, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from acumos_portal.api.errors import error_body
from acumos_portal.api.routers import Router
from acumos_portal.api.tokens import ApiTokenViewSet

accounts = Router()
accounts.register("tokens", ApiTokenViewSet, basename="token")


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the schema describes acumos_portal.api.authentication.TokenAuthentication."""

    target_class = "acumos_portal.api.authentication.TokenAuthentication"
    name = "token"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Bearer <api token or JWT>`, or Acumos's `<login>:<api token>` or a bare JWT "
                               "from POST /onboarding-app/v2/auth"}


@csrf_exempt  # the endpoint it hands over to does its own CSRF check (session) or needs none (tokens)
def fallback(request, *args, **kwargs):
    """`/api/v1/solutions/` is served as `/api/v1/solutions`; anything else is a JSON 404."""
    if request.path.endswith("/"):
        try:
            match = resolve(request.path.rstrip("/"))
        except Resolver404:
            match = None
        if match is not None and match.func is not fallback:
            return match.func(request, *match.args, **match.kwargs)
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)


def docs_page():
    """Swagger UI under the site's Content-Security-Policy: its start-up script is served by the view
    itself (?script) rather than inline, its page styles from a static file (templates/api/swagger_ui.html),
    and its icons, which its style sheet carries as data: images, are allowed on this page alone."""
    view = SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html")
    data_images = {"img-src": ["data:"]}
    return csp_update(data_images)(csp_update(data_images, REPORT_ONLY=True)(view))


app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs_page(), name="docs"),
    path("", include("marketplace.api.urls")),
    path("", include("images.api.urls")),
    path("", include("deployment.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("discovery.api.urls")),
    path("", include("batch.api.urls")),
    path("onboarding/", include("onboarding.api.urls")),
    path("federation/", include("federation.api.admin_urls")),
    path("licensing/", include("licensing.api.urls")),
    path("", include(accounts.urls)),
    re_path(r"", fallback),
]

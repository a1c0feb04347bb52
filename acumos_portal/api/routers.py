"""The one router of the native API (/api/v1/): every app registers its viewsets on its own Router."""

from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    # Paths end without a slash, as Acumos's do (/api/v1/solutions). A client that adds one is still
    # answered: acumos_portal.api.urls.fallback serves /api/v1/solutions/ as /api/v1/solutions.
    def __init__(self):
        super().__init__(trailing_slash=False)

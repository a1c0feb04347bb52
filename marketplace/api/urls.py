"""/api/v1/solutions, /api/v1/revisions, /api/v1/artifacts (mounted in the `api` namespace)."""

from rest_framework.routers import SimpleRouter

from marketplace.api import views

router = SimpleRouter()
router.trailing_slash = ""  # /api/v1/solutions; with a final slash too, see acumos_portal.api.urls
router.register("solutions", views.SolutionViewSet, basename="solution")
router.register("revisions", views.RevisionViewSet, basename="revision")
router.register("artifacts", views.ArtifactViewSet, basename="artifact")

urlpatterns = router.urls

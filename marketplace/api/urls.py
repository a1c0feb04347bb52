"""/api/v1/solutions, /revisions, /artifacts, /catalogs, /publications, /publish-requests and
/notifications (mounted in the `api` namespace)."""

from rest_framework.routers import SimpleRouter

from marketplace.api import views

router = SimpleRouter()
router.trailing_slash = ""  # /api/v1/solutions; with a final slash too, see acumos_portal.api.urls
router.register("solutions", views.SolutionViewSet, basename="solution")
router.register("revisions", views.RevisionViewSet, basename="revision")
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("catalogs", views.CatalogViewSet, basename="catalog")
router.register("publications", views.PublicationViewSet, basename="publication")
router.register("publish-requests", views.PublishRequestViewSet, basename="publish-request")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = router.urls

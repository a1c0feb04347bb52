"""/api/v1/solutions, /revisions, /artifacts, /catalogs, /publications, /publish-requests and
/notifications (mounted in the `api` namespace)."""

from acumos_portal.api.routers import Router
from marketplace.api import views

router = Router()
router.register("solutions", views.SolutionViewSet, basename="solution")
router.register("revisions", views.RevisionViewSet, basename="revision")
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("catalogs", views.CatalogViewSet, basename="catalog")
router.register("publications", views.PublicationViewSet, basename="publication")
router.register("publish-requests", views.PublishRequestViewSet, basename="publish-request")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = router.urls

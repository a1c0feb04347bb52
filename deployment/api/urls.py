"""/api/v1/deployments, /api/v1/deployment-operations, /api/v1/deployment-targets."""

from acumos_portal.api.routers import Router
from deployment.api import views

router = Router()
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("deployment-operations", views.OperationViewSet, basename="deployment-operation")
router.register("deployment-targets", views.TargetViewSet, basename="deployment-target")

urlpatterns = router.urls

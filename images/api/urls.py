"""/api/v1/image-builds (mounted in the `api` namespace)."""

from acumos_portal.api.routers import Router
from images.api import views

router = Router()
router.register("image-builds", views.ImageBuildViewSet, basename="image-build")

urlpatterns = router.urls

"""/api/v1/image-builds (mounted in the `api` namespace)."""

from rest_framework.routers import SimpleRouter

from images.api import views

router = SimpleRouter()
router.trailing_slash = ""
router.register("image-builds", views.ImageBuildViewSet, basename="image-build")

urlpatterns = router.urls

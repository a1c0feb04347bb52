"""/api/v1/onboarding/jobs (mounted in the `api` namespace under onboarding/)."""

from rest_framework.routers import SimpleRouter

from onboarding.api import views

router = SimpleRouter()
router.trailing_slash = ""  # /api/v1/solutions; with a final slash too, see acumos_portal.api.urls
router.register("jobs", views.OnboardingJobViewSet, basename="onboarding-job")

urlpatterns = router.urls

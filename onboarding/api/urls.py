"""/api/v1/onboarding/jobs (mounted in the `api` namespace under onboarding/)."""

from acumos_portal.api.routers import Router
from onboarding.api import views

router = Router()
router.register("jobs", views.OnboardingJobViewSet, basename="onboarding-job")

urlpatterns = router.urls

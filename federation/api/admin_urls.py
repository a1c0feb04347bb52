"""/api/v1/federation/peers, /api/v1/federation/subscriptions, /api/v1/federation/runs: the admins' API."""

from acumos_portal.api.routers import Router
from federation.api import admin_views

router = Router()
router.register("peers", admin_views.PeerViewSet, basename="federation-peer")
router.register("subscriptions", admin_views.SubscriptionViewSet, basename="federation-subscription")
router.register("runs", admin_views.RunViewSet, basename="federation-run")

urlpatterns = router.urls

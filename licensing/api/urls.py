"""/api/v1/licensing/: licences, offers, agreements, access requests, acceptance and usage."""

from django.urls import path

from acumos_portal.api.routers import Router
from licensing.api import views

router = Router()
router.register("revisions", views.RevisionLicenceViewSet, basename="licensing-revision")
router.register("offers", views.OfferViewSet, basename="licensing-offer")
router.register("agreements", views.AgreementViewSet, basename="licensing-agreement")
router.register("access-requests", views.AccessRequestViewSet, basename="licensing-request")
router.register("solutions", views.AcceptanceViewSet, basename="licensing-solution")

urlpatterns = [
    path("licences/templates", views.TemplatesView.as_view(), name="licensing-templates"),
    path("licences/check", views.CheckView.as_view(), name="licensing-check"),
    path("usage", views.UsageView.as_view(), name="licensing-usage"),
    *router.urls,
]

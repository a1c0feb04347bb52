"""/api/v1/discovery and /api/v1/discovery/deploy (mounted in the `api` namespace)."""

from django.urls import path

from discovery.api import views

urlpatterns = [
    path("discovery", views.DiscoveryView.as_view(), name="discovery"),
    path("discovery/deploy", views.DeployChosenView.as_view(), name="discovery-deploy"),
]

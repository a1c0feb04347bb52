"""/api/v1/solutions/{id}/hook, /api/v1/deployments/{id}/hook[/rotate|/deliver|/deliveries], and
/api/v1/deployments/{id}/alert-rules[/{kind}] and /alerts (mounted in the `api` namespace)."""

from django.urls import path

from monitoring.api import views

urlpatterns = [
    path("solutions/<uuid:pk>/hook", views.SolutionHookView.as_view(), name="solution-hook"),
    path("solutions/<uuid:pk>/hook/rotate", views.SolutionHookRotateView.as_view(), name="solution-hook-rotate"),
    path("solutions/<uuid:pk>/hook/deliveries", views.SolutionHookDeliveriesView.as_view(),
         name="solution-hook-deliveries"),
    path("deployments/<uuid:pk>/hook", views.DeploymentHookView.as_view(), name="deployment-hook"),
    path("deployments/<uuid:pk>/hook/rotate", views.DeploymentHookRotateView.as_view(),
         name="deployment-hook-rotate"),
    path("deployments/<uuid:pk>/hook/deliver", views.DeploymentHookDeliverView.as_view(),
         name="deployment-hook-deliver"),
    path("deployments/<uuid:pk>/hook/deliveries", views.DeploymentHookDeliveriesView.as_view(),
         name="deployment-hook-deliveries"),
    path("deployments/<uuid:pk>/alert-rules", views.AlertRulesView.as_view(), name="deployment-alert-rules"),
    path("deployments/<uuid:pk>/alert-rules/<str:kind>", views.AlertRuleView.as_view(), name="deployment-alert-rule"),
    path("deployments/<uuid:pk>/alerts", views.AlertListView.as_view(), name="deployment-alerts"),
]

from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("deployments/<uuid:pk>/monitoring/", views.panel, name="panel"),
    path("deployments/<uuid:pk>/monitoring/settings/", views.settings_section, name="settings"),
    path("deployments/<uuid:pk>/monitoring/rules/<str:kind>/", views.rule, name="rule"),
    path("deployments/<uuid:pk>/monitoring/hook/", views.hook, name="hook"),
    path("deployments/<uuid:pk>/monitoring/hook/call/", views.call_hook, name="hook-call"),
    path("deployments/<uuid:pk>/monitoring/hook/deliveries/", views.deliveries, name="hook-deliveries"),
    path("deployments/<uuid:pk>/monitoring/rollout/", views.rollout_settings, name="rollout-settings"),
    path("deployments/<uuid:pk>/monitoring/rollouts/<uuid:rollout_id>/promote/", views.rollout_decide,
         {"action": "promote"}, name="rollout-promote"),
    path("deployments/<uuid:pk>/monitoring/rollouts/<uuid:rollout_id>/abort/", views.rollout_decide,
         {"action": "abort"}, name="rollout-abort"),
]

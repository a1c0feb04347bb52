"""The Acumos onboarding API, mounted at /onboarding-app/v2/ (see onboarding.api.acumos_views)."""

from django.urls import path, re_path

from onboarding.api import acumos_views

app_name = "acumos"
urlpatterns = [
    path("models", acumos_views.PushModelView.as_view(), name="models"),
    path("auth", acumos_views.AuthView.as_view(), name="auth"),
    re_path(r"", acumos_views.not_found),
]

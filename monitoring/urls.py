from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("deployments/<uuid:pk>/monitoring/", views.panel, name="panel"),
]

"""The admins' federation pages (federation.views)."""

from django.urls import path

from federation import views

app_name = "federation"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("peers/<uuid:pk>/", views.peer, name="peer"),
    path("subscriptions/<uuid:pk>/", views.subscription, name="subscription"),
    path("runs/<uuid:pk>/", views.run, name="run"),
]

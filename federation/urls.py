"""The admins' federation pages (federation.views), under /site/federation/."""

from django.urls import path

from federation import views

app_name = "federation"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("certificate.pem", views.certificate, name="certificate"),
    path("peers/register/", views.register, name="register"),
    path("peers/<uuid:pk>/", views.peer, name="peer"),
    path("peers/<uuid:pk>/edit/", views.peer_edit, name="peer-edit"),
    path("peers/<uuid:pk>/ping/", views.peer_ping, name="peer-ping"),
    path("peers/<uuid:pk>/status/", views.peer_status, name="peer-status"),
    path("peers/<uuid:pk>/delete/", views.peer_delete, name="peer-delete"),
    path("peers/<uuid:pk>/grants/", views.grant, name="grant"),
    path("peers/<uuid:pk>/grants/<uuid:catalog_id>/revoke/", views.revoke, name="revoke"),
    path("peers/<uuid:pk>/subscribe/", views.subscribe, name="subscribe"),
    path("subscriptions/<uuid:pk>/", views.subscription, name="subscription"),
    path("subscriptions/<uuid:pk>/edit/", views.subscription_edit, name="subscription-edit"),
    path("subscriptions/<uuid:pk>/run/", views.run_now, name="run-now"),
    path("subscriptions/<uuid:pk>/unsubscribe/", views.unsubscribe, name="unsubscribe"),
    path("runs/<uuid:pk>/", views.run, name="run"),
    path("runs/<uuid:pk>/live/", views.run_live, name="run-live"),
]

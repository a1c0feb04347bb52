"""Licensing's pages (licensing.views), under /licensing/."""

from django.urls import path

from licensing import views

app_name = "licensing"
urlpatterns = [
    path("", views.home, name="home"),
    path("solutions/<uuid:pk>/", views.solution, name="solution"),
    path("solutions/<uuid:pk>/request/", views.request_access, name="request"),
    path("solutions/<uuid:pk>/accept/", views.accept, name="accept"),
    path("requests/", views.requests, name="requests"),
    path("requests/<uuid:pk>/approve/", views.approve, name="approve"),
    path("requests/<uuid:pk>/decline/", views.decline, name="decline"),
    path("requests/<uuid:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("agreements/", views.agreements, name="agreements"),
    path("agreements/grant/", views.grant, name="grant"),
    path("agreements/<uuid:pk>/revoke/", views.revoke, name="revoke"),
    path("usage/", views.usage, name="usage"),
    path("offers/<uuid:pk>/", views.offer, name="offer"),
    path("mine/", views.mine, name="mine"),
]

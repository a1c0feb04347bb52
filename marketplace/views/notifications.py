"""Notifications: the bell and the page (placeholder until notifications land)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path


def notifications(request):
    return HttpResponse("notifications")


def bell(request):
    return HttpResponse("")


urlpatterns = [
    path("notifications/", notifications, name="notifications"),
    path("notifications/bell/", bell, name="notifications-bell"),
]

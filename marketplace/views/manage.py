"""Publisher and admin pages (placeholder until they land)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path


def home(request):
    return HttpResponse("manage")


urlpatterns = [path("manage/", home, name="manage")]

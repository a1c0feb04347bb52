"""The admins' federation pages. (Being written: see federation/urls.py for the pages they serve.)"""

from django.http import HttpResponse


def overview(request):
    return HttpResponse(status=404)


peer = subscription = run = overview

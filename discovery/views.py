"""The page: a requirement as a form (GET, so a result can be bookmarked and shared), the matching models with
why, and the near misses with what they miss by. The requirement is checked by the API's serializer: one rule
for both ways in."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from discovery import selectors
from discovery.api.serializers import RequirementSerializer

LISTS = ("inputs", "explainability", "licences")


@require_GET
def find(request):
    asked = {name: value.strip() for name, value in request.GET.items() if value.strip()}
    context = {"asked": asked, "tasks": selectors.TASKS, "words": selectors.EXPLAINABILITY_WORDS,
               "answer": None, "errors": {}}
    if asked:
        data = {**asked, **{name: _words(request.GET.getlist(name)) for name in LISTS if name in asked}}
        given = RequirementSerializer(data=data)
        if given.is_valid():
            context["answer"] = selectors.discover(request.user, given.requirement())
        else:
            context["errors"] = {name: " ".join(str(e) for e in errors) for name, errors in given.errors.items()}
    return render(request, "discovery/find.html", context)


def _words(values: list[str]) -> list[str]:
    """Checkboxes send one value each; a text box sends "a, b c": both become a list."""
    return [word for value in values for word in value.replace(",", " ").split() if word]

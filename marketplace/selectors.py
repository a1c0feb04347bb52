"""Reads, and the one place that decides who may see what.

Until publishing arrives, a solution and its revisions are visible to their owner and to portal
admins only. Every list, page, download and API call goes through these functions."""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.models import Artifact, Revision, Solution


def _is_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_portal_admin)


def visible_solutions(user) -> QuerySet[Solution]:
    if not (user and user.is_authenticated):
        return Solution.objects.none()
    solutions = Solution.objects.select_related("owner").prefetch_related("tags")
    return solutions if _is_admin(user) else solutions.filter(owner=user)


def visible_revisions(user) -> QuerySet[Revision]:
    return Revision.objects.filter(solution__in=visible_solutions(user)).select_related("solution", "solution__owner")


def visible_artifacts(user) -> QuerySet[Artifact]:
    return Artifact.objects.filter(revision__in=visible_revisions(user)).select_related("blob", "revision")


def can_change_solution(user, solution: Solution) -> bool:
    return bool(user and user.is_authenticated and (solution.owner_id == user.pk or _is_admin(user)))

"""Licensing's fixtures: a model under a licence that needs an agreement, published where every signed-in
user sees it, and the people the matrix asks about."""

from __future__ import annotations

import pytest

from tests.factories import RevisionFactory, SolutionFactory, licensed


@pytest.fixture
def rtu_revision(owner, catalogs):
    """A ready revision of owner's model, published in Company Models, whose licence needs an agreement."""
    from marketplace import services

    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Fraud scorer"))
    services.publish_directly(revision, catalogs["company"])
    licensed(revision, rtu=True)
    return revision


@pytest.fixture
def open_revision(owner, catalogs):
    from marketplace import services

    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"))
    services.publish_directly(revision, catalogs["company"])
    licensed(revision, rtu=False, spdx="Apache-2.0", text="Apache licence text")
    return revision

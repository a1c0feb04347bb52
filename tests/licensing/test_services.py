"""licensing.services beyond the policy: profiles noted for revisions made before licensing existed."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from licensing.models import LicenceProfile
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Solution
from tests.factories import RevisionFactory

pytestmark = pytest.mark.django_db


def with_licence(revision, profile: dict):
    blob, _ = storage.store_text(json.dumps(profile))
    Artifact.objects.create(revision=revision, kind=ArtifactKind.LICENCE, name="license.json", blob=blob)
    return revision


def test_the_command_notes_the_profiles_of_older_revisions_once(owner, capsys):
    rtu = with_licence(RevisionFactory(solution__owner=owner), {
        "keyword": "Acme", "licenseName": "Acme terms", "copyright": {"year": 2025, "company": "Acme"},
        "spdx": "LicenseRef-Acme", "rtuRequired": True})
    with_licence(RevisionFactory(solution__owner=owner), {
        "keyword": "MIT", "licenseName": "MIT", "copyright": {"year": 2025, "company": "Acme"}})
    RevisionFactory(solution__owner=owner)  # no license.json at all

    call_command("licensing_note_profiles")
    assert "noted 2 licence profile(s); 1 revision(s) have no license.json; 1 need an agreement" in \
        capsys.readouterr().out
    assert LicenceProfile.objects.get(revision=rtu).rtu_required
    assert Solution.objects.get(pk=rtu.solution_id).rtu_required
    assert {p.spdx for p in LicenceProfile.objects.all()} == {"LicenseRef-Acme", "MIT"}  # MIT from its keyword

    call_command("licensing_note_profiles")
    assert "noted 0" in capsys.readouterr().out

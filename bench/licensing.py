"""What a licence check adds to a download, a deploy and the policy call itself: open against rtuRequired.

    .venv/bin/python bench/licensing.py            (or: make bench-licensing; 2,000 timed calls per probe)
    .venv/bin/python bench/licensing.py --quick    (300 calls per probe, same data)
    .venv/bin/python bench/licensing.py --profile  (adds a cProfile of policy.decide for the rtu model)

1. A PostgreSQL database of its own (acumos_bench_licensing_<pid> on 127.0.0.1:5432, dropped at the end, also on
   Ctrl-C or an error), migrated, then seeded with bulk_create: 200 licensors, 2,000 licensees in 50 groups and
   50 organisations, 1,000 solutions with one ready revision each (80% rtuRequired), 10,000 agreements (80% to
   a user, 10% a group, 10% an organisation; a fifth for one revision only; some revoked, some ended, some
   with counts and live limits) with 30,000 rules, and 100,000 usage rows; VACUUM ANALYZE.
   Beside them, the two models the bench uses, both owned by one licensor and published to "Public Models",
   each with one 2 KB artifact file: "open" (an MIT licence profile, rtu_required false) and "rtu"
   (rtu_required true). The bench licensee holds an agreement on the rtu model: download unlimited, deploy
   with a live limit of 2, predict; 5,000 of the usage rows are theirs; the rtu model has 40 other
   agreements (other users, groups and organisations the licensee is not in), and the licensee 20 on other
   models, so the policy's look-ups filter real rows.
2. acumos_portal/wsgi.py is imported as a server does (gc.freeze), then every probe runs in this process,
   DEBUG off, one call each per round, the rounds alternating their order (forward, then backward), so
   whatever else the machine does falls on open and rtu alike. Warm-up first (untimed). The probes:
   - download: `GET /api/v1/artifacts/<id>/download` through Django's test Client as the licensee (the whole
     middleware stack, session auth, DRF), the streamed body read to its end and checked; open against rtu,
     so the difference is the licence gate plus its usage row;
   - policy.decide(consume=1) alone: rtu (entitled: the rule and a usage row) and open; and the dry run
     (consume=0, what pages ask) for rtu. Each call gets a revision fresh from the database (untimed), as a
     request would, so the policy's own look-ups are all counted;
   - deploy: deployment.services.deploy_once as the API's POST calls it (a "local" target): the row, the
     quota's user lock, the licence (a deploy and a live slot, in the same transaction) and the operation
     row. acumos_portal.jobs.send is replaced by a no-op, so the operation that would follow the commit is
     not run: what is timed is what the request waits for. After each call (untimed) the deployment's slot is
     released (licensing.services.release_deployment) and the row marked destroyed, so neither the live
     limit nor the user's quota fills up;
   - anchor: PostgreSQL's `SELECT 1` through Django's cursor, in the same rounds.
3. Printed: p50/p95/p99/max per probe, its median time in the database (an execute_wrapper adds up each
   statement), its queries per call (counted as CaptureQueriesContext would, on 9 calls), and for each
   pair the added ms (rtu minus open) at p50, p95 and p99, plus the median of the per-round differences.
   Target (docs/design/licensing.md, sections 3 and 7): a licence check adds under 2 ms; the verdict is
   taken on the p50 added, the p95 added is judged beside it. The statements rtu runs that open does not
   are listed with their median time each (the rest of the added time is Python: the ORM building and
   reading them, the policy). Saved to bench/out/licensing.json.

Exits 0 when it ran, whatever the verdict; 1 when a call did not answer as expected (a refused download,
a denied decision, a deploy not made).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# This script's name is also the licensing app's: run as bench/licensing.py, its own directory comes first on
# sys.path and `import licensing` (INSTALLED_APPS) would find this file. The repository goes in front of it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402 (after the path is set)
import seed_marketplace  # noqa: E402

BENCH = "licensing"
TARGET_ADDED_MS = 2.0
DB_PREFIX = "acumos_bench_licensing"

LICENSORS, LICENSEES, GROUPS, ORGANISATIONS = 200, 2_000, 50, 50
SOLUTIONS, AGREEMENTS, USAGE_ROWS = 1_000, 10_000, 100_000
RTU_SHARE = 0.8
BENCH_USAGE_ROWS = 5_000  # of USAGE_ROWS, under the bench licensee's agreement
OTHERS_ON_RTU, LICENSEE_ELSEWHERE = 40, 20
BATCH = 5_000
BLOB_BYTES = 2_048
LICENSOR, LICENSEE = "bench-licensor", "bench-licensee"
QUERY_COUNT_CALLS = 9
SAVEPOINT = re.compile(r'"s\d+_x[0-9a-f]+"')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, help="timed calls per probe (default 2000; --quick 300)")
    parser.add_argument("--warmup", type=int, help="untimed calls per probe first (default 50; --quick 20)")
    parser.add_argument("--quick", action="store_true", help="300 timed calls and 20 warm-up per probe")
    parser.add_argument("--seed", type=int, default=0, help="the random generator's seed for the data")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile 200 calls of policy.decide rtu consume=1: where its time goes")
    args = parser.parse_args(argv)
    calls, warmup = (300, 20) if args.quick else (2_000, 50)
    args.calls = calls if args.calls is None else args.calls
    args.warmup = warmup if args.warmup is None else args.warmup
    return args


# ---------------------------------------------------------------- seeding

@dataclass
class Seeded:
    """What the probes need, by primary key (objects are read fresh where a request would read them)."""

    licensee: int = 0
    open_revision: str = ""
    rtu_revision: str = ""
    open_artifact: str = ""
    rtu_artifact: str = ""
    blob_size: int = 0
    target: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def step(seeded: Seeded, name: str):
    started = time.perf_counter()
    yield
    seeded.seconds[name] = time.perf_counter() - started
    print(f"  {name:<44} {seeded.seconds[name]:6.1f} s", flush=True)


def seed(rng: random.Random) -> Seeded:
    seeded = Seeded()
    with step(seeded, "users, groups, organisations"):
        licensors, licensees, groups, organisations = _people(rng, seeded)
    with step(seeded, "solutions, revisions, licence profiles"):
        revisions = _solutions(rng, licensors, seeded)
    with step(seeded, "agreements and rules"):
        agreements = _agreements(rng, revisions, licensees, groups=groups, organisations=organisations,
                                 seeded=seeded)
    with step(seeded, "the bench's two models and its licensee"):
        bench_agreement = _bench_models(rng, licensees, groups, organisations, seeded)
        agreements += _licensee_elsewhere(rng, revisions, seeded)
    with step(seeded, "usage rows"):
        _usage(rng, agreements, bench_agreement, seeded)
    with step(seeded, "target, VACUUM ANALYZE"):
        seeded.target = str(_target().pk)
        _vacuum_analyze()
    return seeded


def _people(rng: random.Random, seeded: Seeded):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from acumos_portal.accounts.models import Membership, Organisation, User

    password = make_password("bench-" + os.urandom(8).hex())  # hashed once: nobody signs in with it
    User.objects.bulk_create([User(username=f"licensor{k}", password=password) for k in range(LICENSORS)]
                             + [User(username=f"licensee{k}", password=password) for k in range(LICENSEES)]
                             + [User(username=LICENSOR, password=password), User(username=LICENSEE, password=password)],
                             batch_size=BATCH)
    Group.objects.bulk_create([Group(name=f"bench group {k}") for k in range(GROUPS)])
    Organisation.objects.bulk_create([Organisation(name=f"Bench Org {k}", slug=f"bench-org-{k}")
                                      for k in range(ORGANISATIONS)])
    licensors = list(User.objects.filter(username__startswith="licensor").values_list("pk", flat=True))
    licensees = list(User.objects.filter(username__startswith="licensee").values_list("pk", flat=True))
    groups = list(Group.objects.values_list("pk", flat=True))
    organisations = list(Organisation.objects.values_list("pk", flat=True))
    in_groups = {(u, g) for u in licensees for g in rng.sample(groups, rng.randint(0, 2))}
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u, group_id=g) for u, g in in_groups],
                                            batch_size=BATCH)
    members = [Membership(user_id=u, organisation_id=rng.choice(organisations)) for u in licensees
               if rng.random() < 0.5]
    Membership.objects.bulk_create(members, batch_size=BATCH)
    seeded.rows.update(users=User.objects.count(), groups=len(groups), organisations=len(organisations),
                       group_members=len(in_groups), organisation_members=len(members))
    return licensors, licensees, groups, organisations


def _solutions(rng: random.Random, licensors: list[int], seeded: Seeded) -> dict[str, tuple[str, int]]:
    """{revision id: (solution id, owner)}: one ready revision per solution, 80% rtuRequired."""
    from django.utils import timezone

    from licensing.models import LicenceProfile
    from marketplace.choices import RevisionStatus
    from marketplace.models import Revision, Solution

    now = timezone.now()
    solutions = [Solution(owner_id=rng.choice(licensors), name=f"Licensed model {k}", toolkit="sklearn")
                 for k in range(SOLUTIONS)]
    Solution.objects.bulk_create(solutions, batch_size=BATCH)
    revisions = [Revision(solution=s, version="1.0.0", status=RevisionStatus.READY, created_by_id=s.owner_id,
                          ready_at=now) for s in solutions]
    Revision.objects.bulk_create(revisions, batch_size=BATCH)
    profiles = [_profile(r, rtu=rng.random() < RTU_SHARE) for r in revisions]
    LicenceProfile.objects.bulk_create(profiles, batch_size=BATCH)
    seeded.rows.update(solutions=len(solutions), revisions=len(revisions), licence_profiles=len(profiles))
    return {str(r.pk): (str(r.solution_id), r.solution.owner_id) for r in revisions}


def _profile(revision, *, rtu: bool):
    from licensing.models import LicenceProfile

    spdx = "LicenseRef-Bench-Proprietary" if rtu else "MIT"
    return LicenceProfile(revision=revision, keyword=spdx.removeprefix("LicenseRef-"), licence_name=spdx, spdx=spdx,
                          spdx_ids=f" {spdx} ", rtu_required=rtu,
                          profile={"keyword": spdx, "spdx": spdx, "rtuRequired": rtu})


def _agreements(rng, revisions: dict, licensees: list[int], *, groups: list[int], organisations: list[int],
                seeded: Seeded) -> list:
    from licensing.models import Agreement

    revision_ids = list(revisions)
    agreements = []
    for _ in range(AGREEMENTS):
        revision = rng.choice(revision_ids)
        solution, owner = revisions[revision]
        agreements.append(_agreement(rng, solution, owner, _assignee(rng, licensees, groups, organisations),
                                     revision=revision if rng.random() < 0.2 else None))
    Agreement.objects.bulk_create(agreements, batch_size=BATCH)
    seeded.rows["rules"] = _rules(rng, agreements)
    seeded.rows["agreements"] = len(agreements)
    return agreements


def _assignee(rng, licensees, groups, organisations) -> dict:
    pick = rng.random()
    if pick < 0.8:
        return {"assignee_kind": "user", "assignee_user_id": rng.choice(licensees)}
    if pick < 0.9:
        return {"assignee_kind": "group", "assignee_group_id": rng.choice(groups)}
    return {"assignee_kind": "organisation", "assignee_organisation_id": rng.choice(organisations)}


def _agreement(rng, solution: str, owner: int, assignee: dict, *, revision: str | None = None):
    """Mostly active for a year; some revoked, some ended, some with no end."""
    from django.utils import timezone

    from licensing.choices import AgreementStatus
    from licensing.models import Agreement

    now = timezone.now()
    fate = rng.random()
    status = AgreementStatus.REVOKED if fate < 0.05 else AgreementStatus.ACTIVE
    ends = (now - dt.timedelta(days=rng.randint(1, 300)) if fate < 0.15 else None if fate > 0.9
            else now + dt.timedelta(days=rng.randint(30, 365)))
    starts = None if ends is None else ends - dt.timedelta(days=365)
    return Agreement(solution_id=solution, revision_id=revision, licensor_id=owner, status=status, starts=starts,
                     ends=ends, revoked_at=now if status == AgreementStatus.REVOKED else None, **assignee)


def _rules(rng, agreements: list) -> int:
    """download, deploy, predict per agreement; a third count-limited, deploys with a live limit."""
    from licensing.models import Rule

    rules = []
    for agreement in agreements:
        limited = rng.random() < 0.33
        rules += [Rule(agreement=agreement, action="download", count_limit=100 if limited else None,
                       count_used=rng.randint(0, 100) if limited else 0),
                  Rule(agreement=agreement, action="deploy", count_limit=10 if limited else None,
                       live_limit=rng.randint(1, 3)),
                  Rule(agreement=agreement, action="predict", count_limit=100_000 if limited else None)]
    Rule.objects.bulk_create(rules, batch_size=BATCH)
    return len(rules)


def _bench_models(rng, licensees, groups, organisations, seeded: Seeded):
    """The open and rtu models, published, one small artifact file each; the licensee's agreement on rtu
    (unlimited downloads, deploys with a live limit of 2) among 40 others that do not apply to them."""
    from django.contrib.auth.models import Group

    from acumos_portal.accounts.models import Membership, User
    from licensing.models import Agreement, Rule

    licensor = User.objects.get(username=LICENSOR)
    licensee = User.objects.get(username=LICENSEE)
    seeded.licensee = licensee.pk
    mine = rng.sample(groups, 2)
    licensee.groups.add(*mine)  # the policy's membership subqueries find rows
    Membership.objects.create(user=licensee, organisation_id=organisations[0])
    open_revision, seeded.open_artifact = _published_model(licensor, "Bench open model", rtu=False, seeded=seeded)
    rtu_revision, seeded.rtu_artifact = _published_model(licensor, "Bench rtu model", rtu=True, seeded=seeded)
    seeded.open_revision, seeded.rtu_revision = str(open_revision.pk), str(rtu_revision.pk)
    solution = str(rtu_revision.solution_id)
    others = [_agreement(rng, solution, licensor.pk, {"assignee_kind": "user", "assignee_user_id": u})
              for u in rng.sample([u for u in licensees if u != licensee.pk], OTHERS_ON_RTU - 5)]
    not_mine = list(Group.objects.filter(pk__in=groups).exclude(pk__in=mine).values_list("pk", flat=True))
    others += [_agreement(rng, solution, licensor.pk, {"assignee_kind": "group", "assignee_group_id": g})
               for g in not_mine[:3]]
    others += [_agreement(rng, solution, licensor.pk, {"assignee_kind": "organisation",
                                                       "assignee_organisation_id": o}) for o in organisations[1:3]]
    Agreement.objects.bulk_create(others)
    _rules(rng, others)
    bench = Agreement.objects.create(solution_id=solution, licensor=licensor, assignee_kind="user",
                                     assignee_user=licensee, ends=_in_a_year())
    Rule.objects.bulk_create([Rule(agreement=bench, action="download"),
                              Rule(agreement=bench, action="deploy", live_limit=2),
                              Rule(agreement=bench, action="predict")])
    seeded.rows["agreements"] += len(others) + 1
    seeded.rows["rules"] += 3 * len(others) + 3
    return bench


def _in_a_year():
    from django.utils import timezone

    return timezone.now() + dt.timedelta(days=365)


def _published_model(licensor, name: str, *, rtu: bool, seeded: Seeded):
    """A solution with one ready revision, its licence profile, one artifact file, in "Public Models"."""
    from licensing.models import LicenceProfile
    from marketplace import services, storage
    from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind, RevisionStatus
    from marketplace.models import Artifact, Catalog, Revision, Solution

    solution = Solution.objects.create(owner=licensor, name=name, toolkit="sklearn")
    revision = Revision.objects.create(solution=solution, version="1.0.0", status=RevisionStatus.READY,
                                       created_by=licensor, ready_at=_in_a_year() - dt.timedelta(days=365))
    LicenceProfile.objects.bulk_create([_profile(revision, rtu=rtu)])
    padding = "x" * BLOB_BYTES
    text = json.dumps({"name": name, "padding": padding})[:BLOB_BYTES]
    blob, _ = storage.store_text(text, ".json")
    seeded.blob_size = blob.size
    kind = ArtifactKind.METADATA
    artifact = Artifact.objects.create(revision=revision, kind=kind, name=ARTIFACT_FILE_NAMES[kind], blob=blob)
    services.publish_directly(revision, Catalog.objects.get(name="Public Models"))
    return revision, str(artifact.pk)


def _licensee_elsewhere(rng, revisions: dict, seeded: Seeded) -> list:
    from licensing.models import Agreement

    elsewhere = [_agreement(rng, solution, owner, {"assignee_kind": "user", "assignee_user_id": seeded.licensee})
                 for solution, owner in rng.sample(list(revisions.values()), LICENSEE_ELSEWHERE)]
    Agreement.objects.bulk_create(elsewhere)
    seeded.rows["rules"] += _rules(rng, elsewhere)
    seeded.rows["agreements"] += len(elsewhere)
    return elsewhere


def _usage(rng, agreements: list, bench_agreement, seeded: Seeded) -> None:
    """USAGE_ROWS in all, BENCH_USAGE_ROWS of them the licensee's downloads and deploys of the rtu model."""
    from licensing.models import UsageRecord
    from marketplace.models import Revision

    first_revision = {str(s): r for s, r in Revision.objects.values_list("solution_id", "pk")}
    rows = [_usage_row(rng, a, first_revision, user=a.assignee_user_id) for a in
            rng.choices([a for a in agreements if a.status == "active"], k=USAGE_ROWS - BENCH_USAGE_ROWS)]
    rows += [_usage_row(rng, bench_agreement, first_revision, user=seeded.licensee)
             for _ in range(BENCH_USAGE_ROWS)]
    UsageRecord.objects.bulk_create(rows, batch_size=BATCH)
    seeded.rows["usage_rows"] = len(rows)


def _usage_row(rng, agreement, first_revision: dict, *, user):
    from licensing.models import UsageRecord

    action = rng.choices(("download", "deploy", "predict"), (6, 1, 3))[0]
    revision = agreement.revision_id or first_revision[str(agreement.solution_id)]
    return UsageRecord(agreement=agreement, solution_id=agreement.solution_id, revision_id=revision, action=action,
                       kind="metadata.json" if action == "download" else "", user_id=user,
                       quantity=rng.randint(1, 500) if action == "predict" else 1,
                       source="runner" if action == "predict" else "portal")


def _target():
    from deployment import secretbox
    from deployment.choices import TargetKind
    from deployment.models import Target

    return Target.objects.create(name="bench no-op", kind=TargetKind.LOCAL, enabled=True,
                                 secret_encrypted=secretbox.encrypt(""))


def _vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------- what is timed

@dataclass(eq=False)
class Probe:
    """One call, timed once per round. `prepare` (untimed) makes its argument, `call` is timed, `check`
    says whether its answer is the expected one, `cleanup` (untimed) undoes what would fill up."""

    label: str
    call: Callable[[object], object]
    check: Callable[[object], bool]
    prepare: Callable[[], object] | None = None
    cleanup: Callable[[object], None] | None = None
    anchor: bool = False
    times_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    failures: int = 0
    last_failure: str = ""

    def once(self, record: bool, sql: harness.SqlTimer) -> None:
        argument = self.prepare() if self.prepare else None
        sql.total_ms = 0.0
        started = time.perf_counter_ns()
        answer = self.call(argument)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        sql_ms = sql.total_ms
        if self.cleanup:
            self.cleanup(answer)
        if not self.check(answer):
            self.failures += 1
            self.last_failure = repr(answer)[:300]
        if record:
            self.times_ms.append(elapsed)
            self.sql_ms.append(sql_ms)


@dataclass(frozen=True)
class Pair:
    """What the licence check adds: `rtu` minus `open`, timed in the same rounds."""

    label: str
    open: Probe
    rtu: Probe


def download_probe(label: str, client, artifact_id: str, size: int) -> Probe:
    url = f"/api/v1/artifacts/{artifact_id}/download"

    def call(_):
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        response.close()
        return response.status_code, len(body)

    return Probe(label, call, check=lambda answer: answer == (200, size))


def decide_probe(label: str, user, revision_id: str, *, consume: int, expected: str) -> Probe:
    from licensing import policy
    from licensing.choices import Action
    from marketplace.models import Revision

    who = policy.Who.of(user)

    def call(revision):
        return policy.decide(who, revision, Action.DOWNLOAD, consume=consume, kind="metadata.json")

    return Probe(label, call, prepare=lambda: Revision.objects.get(pk=revision_id),
                 check=lambda decision: decision.allowed and decision.code == expected)


def deploy_probe(label: str, user, revision_id: str, target, *, slot: bool) -> Probe:
    """deploy_once as the API calls it; the slot is released and the row marked destroyed afterwards, untimed.
    `slot`: whether the licence took a live slot (rtu), which the release must find."""
    from deployment import services as deployments
    from deployment.choices import DeploymentStatus
    from deployment.models import Deployment
    from licensing import services as licensing
    from marketplace.models import Revision

    released = {}

    def call(revision):
        return deployments.deploy_once(revision=revision, target=target, user=user, idempotency_key=None)

    def cleanup(answer):
        deployment, _created = answer
        released[deployment.pk] = licensing.release_deployment(deployment.pk)
        Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.DESTROYED)

    def check(answer):
        deployment, created = answer
        return created and released.pop(deployment.pk) == slot

    return Probe(label, call, prepare=lambda: Revision.objects.get(pk=revision_id), cleanup=cleanup, check=check)


def select_one() -> Probe:
    from django.db import connection

    def call(_):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()

    return Probe("anchor: PostgreSQL SELECT 1", call, check=lambda row: row == (1,), anchor=True)


def no_jobs_sent() -> None:
    """The operation a deploy enqueues is sent after the commit (acumos_portal.jobs.send): a no-op here, so
    nothing runs it and the timed call is what the request waits for."""
    from acumos_portal import jobs

    jobs.send = lambda task, *args, **options: None


def build_pairs(seeded: Seeded) -> tuple[list[Pair], list[Probe]]:
    from django.test import Client

    from acumos_portal.accounts.models import User
    from deployment.models import Target

    licensee = User.objects.get(pk=seeded.licensee)
    client = Client()
    client.force_login(licensee)
    target = Target.objects.get(pk=seeded.target)
    open_decide = decide_probe("policy.decide open", licensee, seeded.open_revision, consume=1, expected="open")
    pairs = [
        Pair("download (API)",
             download_probe("download open (API)", client, seeded.open_artifact, seeded.blob_size),
             download_probe("download rtu (API)", client, seeded.rtu_artifact, seeded.blob_size)),
        Pair("policy.decide consume=1", open_decide,
             decide_probe("policy.decide rtu consume=1", licensee, seeded.rtu_revision, consume=1,
                          expected="entitled")),
        Pair("policy.decide dry run", open_decide,
             decide_probe("policy.decide rtu dry run", licensee, seeded.rtu_revision, consume=0,
                          expected="entitled")),
        Pair("deploy_once",
             deploy_probe("deploy_once open", licensee, seeded.open_revision, target, slot=False),
             deploy_probe("deploy_once rtu", licensee, seeded.rtu_revision, target, slot=True)),
    ]
    probes = list(dict.fromkeys([select_one(), *(p for pair in pairs for p in (pair.open, pair.rtu))]))  # by identity
    return pairs, probes


# ---------------------------------------------------------------- measuring

def measure(probes: list[Probe], calls: int, warmup: int) -> None:
    """One call of each probe per round; odd rounds go backwards, so no probe always follows another."""
    from django.db import connection

    sql = harness.SqlTimer()
    with connection.execute_wrapper(sql):
        for round_no in range(warmup + calls):
            order = probes if round_no % 2 == 0 else probes[::-1]
            for probe in order:
                probe.once(record=round_no >= warmup, sql=sql)


class QueryLog:
    """The statements of one call, as templates (placeholders, not values; savepoint names made alike), each
    with its own time: what two calls share, and what each statement costs."""

    def __init__(self):
        self.templates: list[str] = []
        self.times_ms: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            self.times_ms.append((time.perf_counter_ns() - started) / 1e6)
            self.templates.append(SAVEPOINT.sub('"<savepoint>"', sql))


@dataclass
class ProbeQueries:
    calls: list[list[str]]  # the templates of each call
    median_ms: dict[str, float]  # template -> median time of one run of it, over the calls

    @property
    def shown(self) -> str:
        return "/".join(str(n) for n in sorted({len(c) for c in self.calls}))


def queries_of(probe: Probe) -> ProbeQueries:
    from django.db import connection

    calls, times = [], {}
    for _ in range(QUERY_COUNT_CALLS):
        argument = probe.prepare() if probe.prepare else None
        log = QueryLog()
        with connection.execute_wrapper(log):
            answer = probe.call(argument)
        if probe.cleanup:
            probe.cleanup(answer)
        probe.check(answer)  # keeps the deploy probe's bookkeeping even
        calls.append(log.templates)
        for template, elapsed in zip(log.templates, log.times_ms, strict=True):
            times.setdefault(template, []).append(elapsed)
    return ProbeQueries(calls, {template: statistics.median(ms) for template, ms in times.items()})


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the value below which pct% of the calls fall."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def stats(probe: Probe) -> dict:
    times = probe.times_ms
    return {"p50_ms": statistics.median(times), "p95_ms": percentile(times, 95), "p99_ms": percentile(times, 99),
            "max_ms": max(times), "mean_ms": statistics.fmean(times), "calls": len(times),
            "sql_p50_ms": statistics.median(probe.sql_ms), "failures": probe.failures,
            "last_failure": probe.last_failure}


def added(pair: Pair, figures: dict[str, dict]) -> dict:
    rtu, open_ = figures[pair.rtu.label], figures[pair.open.label]
    paired = [r - o for r, o in zip(pair.rtu.times_ms, pair.open.times_ms, strict=True)]
    result = {f"added_{p}_ms": rtu[f"{p}_ms"] - open_[f"{p}_ms"] for p in ("p50", "p95", "p99")}
    result["added_paired_median_ms"] = statistics.median(paired)
    result["added_sql_p50_ms"] = rtu["sql_p50_ms"] - open_["sql_p50_ms"]
    result["p50_under_target"] = result["added_p50_ms"] < TARGET_ADDED_MS
    result["p95_under_target"] = result["added_p95_ms"] < TARGET_ADDED_MS
    return result


def extra_statements(rtu: list[str], open_: list[str]) -> list[str]:
    """What the rtu call runs that the open one does not (templates, as a multiset difference)."""
    return list((Counter(rtu) - Counter(open_)).elements())


# ---------------------------------------------------------------- printing

def fmt(ms: float) -> str:
    return f"{ms:.2f}" if abs(ms) < 10 else f"{ms:.1f}"


def one_line(sql: str, width: int = 150) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def probes_table(probes: list[Probe], figures: dict, counts: dict) -> str:
    rows = [[p.label, counts.get(p.label, "-"), *(fmt(figures[p.label][k]) for k in
                                                   ("sql_p50_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")),
             str(figures[p.label]["failures"])] for p in probes]
    return harness.table(["probe", "queries", "SQL p50", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed"], rows)


def pairs_table(pairs: list[Pair], added_by: dict) -> str:
    rows = []
    for pair in pairs:
        a = added_by[pair.label]
        rows.append([pair.label, *(fmt(a[k]) for k in ("added_p50_ms", "added_p95_ms", "added_p99_ms",
                                                        "added_paired_median_ms", "added_sql_p50_ms")),
                     "yes" if a["p50_under_target"] else "NO", "yes" if a["p95_under_target"] else "NO"])
    return harness.table(["rtu minus open", "p50", "p95", "p99", "paired median", "SQL p50",
                          f"p50<{TARGET_ADDED_MS:.0f}ms", f"p95<{TARGET_ADDED_MS:.0f}ms"], rows)


def print_extra(pairs: list[Pair], queries: dict[str, ProbeQueries]) -> dict[str, list[dict]]:
    print(f"\n== statements the rtu call runs that the open one does not, each with its median time over "
          f"{QUERY_COUNT_CALLS} calls ==")
    extras = {}
    for pair in pairs:
        rtu = queries[pair.rtu.label]
        extra = extra_statements(rtu.calls[-1], queries[pair.open.label].calls[-1])
        extras[pair.label] = [{"sql": sql, "median_ms": rtu.median_ms[sql]} for sql in extra]
        total = sum(rtu.median_ms[sql] for sql in extra)
        print(f"  {pair.label}: +{len(extra)} statements, {fmt(total)} ms in the database")
        for sql in extra:
            print(f"    {rtu.median_ms[sql]:6.2f} ms  {one_line(sql, 130)}")
    return extras


def profile(probe: Probe, calls: int = 200) -> str:
    """Where one probe's time goes: the portal's functions, the ORM's compiler, the driver."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    for _ in range(calls):
        argument = probe.prepare() if probe.prepare else None
        profiler.enable()
        answer = probe.call(argument)
        profiler.disable()
        if probe.cleanup:
            probe.cleanup(answer)
        probe.check(answer)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# ---------------------------------------------------------------- run

def run(args) -> int:
    wall = time.monotonic()
    with contextlib.ExitStack() as stack:
        data_dir = harness.scratch_dir(stack, "acumos-bench-licensing-")
        (data_dir / "static").mkdir()  # where the portal serves collected static files from: none needed here
        url = stack.enter_context(seed_marketplace.scratch_database(DB_PREFIX))
        print(f"== database {url.rsplit('/', 1)[1]}: migrating, seeding ==", flush=True)
        started = time.perf_counter()
        seed_marketplace.setup_django(url, Path(data_dir))
        migrate_s = time.perf_counter() - started
        seeded = seed(random.Random(args.seed))
        print("  rows: " + ", ".join(f"{v:,} {k}" for k, v in seeded.rows.items()), flush=True)
        results = measure_and_report(args, seeded)
        results["seed"] = {"rows": seeded.rows, "seconds": seeded.seconds, "migrate_seconds": migrate_s}
        path = harness.write_results(BENCH, results)
        print(f"\nwrote {path.relative_to(harness.REPO)}")
    print(f"database dropped, scratch removed; total wall time {time.monotonic() - wall:.0f} s")
    return 0 if results["all_as_expected"] else 1


def measure_and_report(args, seeded: Seeded) -> dict:
    # As a WSGI server loads the portal: acumos_portal/wsgi.py also gc.freeze()s what is loaded.
    importlib.import_module("acumos_portal.wsgi")
    no_jobs_sent()
    pairs, probes = build_pairs(seeded)
    print(f"\n== timing: {args.warmup} warm-up + {args.calls} timed calls per probe, rounds alternating ==",
          flush=True)
    background = harness.check_quiet("the measurements")
    load_before = os.getloadavg()
    started = time.perf_counter()
    measure(probes, args.calls, args.warmup)
    timed_s = time.perf_counter() - started
    load_after = os.getloadavg()
    figures = {p.label: stats(p) for p in probes}
    queries = {p.label: queries_of(p) for p in probes if not p.anchor}
    counts = {label: found.shown for label, found in queries.items()}
    added_by = {pair.label: added(pair, figures) for pair in pairs}
    print(f"\n== per call, {args.calls} calls each ({timed_s:.0f} s; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after, on {os.cpu_count()} CPUs) ==")
    print(probes_table(probes, figures, counts))
    print("\n== what the licence check adds (rtu minus open, same rounds) ==")
    print(pairs_table(pairs, added_by))
    extras = print_extra(pairs, queries)
    if args.profile:
        decide = next(pair.rtu for pair in pairs if pair.label == "policy.decide consume=1")
        print(f"\n== cProfile: 200 calls of {decide.label} ==")
        print(profile(decide))
    failed = [p.label for p in probes if p.failures]
    for probe in probes:
        if probe.failures:
            print(f"\nFAILED {probe.label}: {probe.failures} calls; last answer {probe.last_failure}")
    headline = [added_by[pair.label] for pair in pairs]
    print(f"\nverdict (target: under {TARGET_ADDED_MS:.0f} ms added): "
          + "; ".join(f"{pair.label} +{fmt(added_by[pair.label]['added_p50_ms'])} ms p50, "
                      f"+{fmt(added_by[pair.label]['added_p95_ms'])} ms p95" for pair in pairs)
          + (" -> every check under target at p50" if all(a["p50_under_target"] for a in headline)
             else " -> OVER target at p50"))
    return {"machine": harness.machine(), "background_cpu_pct": background,
            "load_average_before": load_before, "load_average_after": load_after, "calls": args.calls,
            "warmup": args.warmup, "timed_seconds": timed_s, "target_added_ms": TARGET_ADDED_MS,
            "probes": figures, "added": added_by,
            "queries": {label: {"per_call": found.shown, "statements": found.calls[-1],
                                "median_ms": found.median_ms} for label, found in queries.items()},
            "rtu_extra_statements": extras, "all_as_expected": not failed, "failed": failed}


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))

"""Discovery by requirement (the MLaaS paper's "a model that does X within Y"): the models the caller may see
whose newest ready version meets every part of a requirement, best first, each with why; and the near misses,
each with what it misses by ("needs 1.2 GB, you allow 1 GB").

What a requirement may ask, and what it is matched against (all of it measured or read by the portal, except
the card, which its owners declare):
- `task`: the model card's task (marketplace.cards.TASKS);
- `inputs`: field names that one method must all take (its proto, Revision.interface / RevisionInput);
- `catalog`: published in that catalog;
  these three say which models are relevant at all: a model that fails one is not listed;
- `max_memory_mb`: the peak memory measured in the sandboxed smoke test;
- `max_latency_ms`: its slowest method's median call, measured there;
- `explainability`: words the card's explainability must all have (shap, feature_importance, ..., local, global);
- `licences`: SPDX ids any one of which the model's licence must name;
  a model that fails one of these is a near miss, listed apart with what it misses by. A figure that was not
  measured (smoke tests off, or an older version) is a miss too: nobody knows it is met.

Order: matches by latency, then memory (unmeasured last), then name; near misses by how many parts they
miss, then the same, looked for among the NEAR_POOL (200) quickest relevant models (a bound: otherwise a broad
requirement judges every one of tens of thousands of models to answer ten). Everything is decided in the
database on indexed columns (marketplace.services._index keeps them), so that a requirement over 100,000
models takes milliseconds; the sentences are made for the rows answered only."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value, When

from marketplace import cards
from marketplace.choices import RevisionStatus
from marketplace.models import Publication, Revision, RevisionInput
from marketplace.selectors import visible_revisions

MAX_LIMIT = 50
NEAR_POOL = 200  # near misses are looked for, and relevant models counted, among this many, the quickest first
MIB = 1 << 20
COLUMNS = ("id", "solution_id", "version", "status", "task", "peak_memory_mb", "latency_ms", "explains", "interface",
           "solution__id", "solution__name", "solution__licence", "solution__licence_ids")


@dataclass(frozen=True)
class Requirement:
    task: str = ""
    inputs: tuple[str, ...] = ()
    catalog: str = ""  # a catalog id
    max_memory_mb: int | None = None
    max_latency_ms: float | None = None
    explainability: tuple[str, ...] = ()
    licences: tuple[str, ...] = ()
    limit: int = 10


@dataclass
class Found:
    revision: Revision
    method: str  # the method that takes the inputs ("" when none were asked for)
    why: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


@dataclass
class Answer:
    matches: list[Found]
    near_misses: list[Found]
    considered: int  # relevant models (task, inputs, catalog) the caller may see, counted up to NEAR_POOL
    more: bool = False  # more than NEAR_POOL are relevant


def discover(user, requirement: Requirement) -> Answer:
    relevant = _relevant(user, requirement)
    # Revision columns only: the (task, latency) index then gives the order, and the walk stops at the limit.
    order = [F("latency_ms").asc(nulls_last=True), F("peak_memory_mb").asc(nulls_last=True), "pk"]
    limit = min(max(requirement.limit, 1), MAX_LIMIT)
    judged = relevant.annotate(misses=_miss_count(requirement))
    # Matches by plain predicates, not by the count of misses: the (task, latency) index then serves the latency
    # bound as a range, and a requirement nothing meets is answered without walking every relevant model.
    matches = list(relevant.filter(_meeting(requirement)).order_by(*order)[:limit])
    # One more query: the NEAR_POOL quickest relevant models with their misses counted, in order. The near
    # misses are the fewest-missing of them (a stable sort keeps the order within a count), and how many
    # models are relevant is counted on them too ("200+" past it).
    pool = list(judged.order_by(*order)[:NEAR_POOL + 1])
    near = sorted((row for row in pool[:NEAR_POOL] if row.misses), key=lambda row: row.misses)[:limit]
    return Answer([_explained(r, requirement) for r in matches], [_explained(r, requirement) for r in near],
                  min(len(pool), NEAR_POOL), len(pool) > NEAR_POOL)


def _relevant(user, requirement: Requirement) -> QuerySet[Revision]:
    """The newest ready version of each model the caller may see that is for the task, takes the inputs and is
    in the catalog asked for."""
    # Only the narrow columns: a row of the solution (its description, its search text) is wide, and hashing
    # every solution to join them cost more than the whole answer.
    found = (visible_revisions(user).select_related(None).select_related("solution")
             .filter(latest_ready=True, status=RevisionStatus.READY).only(*COLUMNS))
    if requirement.task:
        found = found.filter(task=requirement.task)
    if requirement.inputs:  # one grouped pass over the fields' index, not a lookup per candidate
        # A field is named once per method (the constraint), so a plain count: it hashes, where a distinct
        # count sorts every row first.
        named = RevisionInput.objects.filter(name__in=requirement.inputs)
        if requirement.task:  # only that task's entries of the index (RevisionInput.task)
            named = named.filter(task=requirement.task)
        taking = (named.values("revision_id", "method")
                  .annotate(taken=Count("*")).filter(taken=len(set(requirement.inputs))).values("revision_id"))
        found = found.filter(pk__in=taking)
    if requirement.catalog:
        found = found.filter(Exists(Publication.objects.filter(revision=OuterRef("pk"),
                                                               catalog_id=requirement.catalog)))
    return found


def _failing(requirement: Requirement) -> list[Q]:
    """One condition per part of the requirement that the row fails (unmeasured counts as failing)."""
    conditions = []
    if requirement.max_memory_mb is not None:
        conditions.append(Q(peak_memory_mb__isnull=True) | Q(peak_memory_mb__gt=requirement.max_memory_mb))
    if requirement.max_latency_ms is not None:
        conditions.append(Q(latency_ms__isnull=True) | Q(latency_ms__gt=requirement.max_latency_ms))
    for word in requirement.explainability:
        conditions.append(~Q(explains__contains=f" {word} "))
    if requirement.licences:
        allowed = Q()
        for spdx in requirement.licences:
            allowed |= Q(solution__licence=spdx) | Q(solution__licence_ids__icontains=f" {spdx} ")
        conditions.append(~allowed)
    return conditions


def _meeting(requirement: Requirement) -> Q:
    """Every judged part met (the negation of _failing, written so that an index can serve it)."""
    met = Q()
    if requirement.max_memory_mb is not None:
        met &= Q(peak_memory_mb__lte=requirement.max_memory_mb)
    if requirement.max_latency_ms is not None:
        met &= Q(latency_ms__lte=requirement.max_latency_ms)
    for word in requirement.explainability:
        met &= Q(explains__contains=f" {word} ")
    if requirement.licences:
        allowed = Q()
        for spdx in requirement.licences:
            allowed |= Q(solution__licence=spdx) | Q(solution__licence_ids__icontains=f" {spdx} ")
        met &= allowed
    return met


def _miss_count(requirement: Requirement):
    total = Value(0, output_field=IntegerField())
    for condition in _failing(requirement):
        total = total + Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())
    return total


# ---------------------------------------------------------------- in words

def _explained(revision: Revision, requirement: Requirement) -> Found:
    method = _method_taking(revision, requirement.inputs)
    found = Found(revision, method)
    if requirement.task:
        found.why.append(f"its card says {revision.task.replace('_', ' ')}")
    if requirement.inputs:
        found.why.append(f"{method} takes {', '.join(requirement.inputs)}")
    if requirement.catalog:
        found.why.append("published in the catalog asked for")
    _memory(found, revision, requirement)
    _latency(found, revision, requirement)
    _explains(found, revision, requirement)
    _licence(found, revision, requirement)
    return found


def _method_taking(revision: Revision, inputs: tuple[str, ...]) -> str:
    for method, sides in (revision.interface or {}).items():
        names = {f["name"] for f in sides.get("inputs", [])}
        if set(inputs) <= names:
            return method
    return ""


def _memory(found: Found, revision: Revision, requirement: Requirement) -> None:
    if requirement.max_memory_mb is None:
        return
    allowed = _size(requirement.max_memory_mb)
    if revision.peak_memory_mb is None:
        found.misses.append(f"its memory was not measured (you allow {allowed})")
    elif revision.peak_memory_mb > requirement.max_memory_mb:
        found.misses.append(f"needs {_size(revision.peak_memory_mb)}, you allow {allowed}")
    else:
        found.why.append(f"needs {_size(revision.peak_memory_mb)} (you allow {allowed})")


def _latency(found: Found, revision: Revision, requirement: Requirement) -> None:
    if requirement.max_latency_ms is None:
        return
    allowed = f"{requirement.max_latency_ms:g} ms"
    if revision.latency_ms is None:
        found.misses.append(f"its latency was not measured (you allow {allowed})")
    elif revision.latency_ms > requirement.max_latency_ms:
        found.misses.append(f"answers in {revision.latency_ms:.3g} ms, you allow {allowed}")
    else:
        found.why.append(f"answers in {revision.latency_ms:.3g} ms (you allow {allowed})")


def _explains(found: Found, revision: Revision, requirement: Requirement) -> None:
    if not requirement.explainability:
        return
    has = set(revision.explains.split())
    lacking = [word for word in requirement.explainability if word not in has]
    if lacking:
        found.misses.append(f"its card does not say it explains with {', '.join(lacking)}"
                            + (f" (it says {', '.join(sorted(has))})" if has else " (it says nothing of it)"))
    else:
        found.why.append(f"explains with {', '.join(requirement.explainability)}")


def _licence(found: Found, revision: Revision, requirement: Requirement) -> None:
    if not requirement.licences:
        return
    solution = revision.solution
    named = {solution.licence, *solution.licence_ids.split()}
    if named & set(requirement.licences):
        found.why.append(f"its licence {solution.licence} is one you allow")
    else:
        found.misses.append(f"its licence is {solution.licence or 'not given'}; you allow "
                            f"{', '.join(requirement.licences)}")


def _size(mib: int) -> str:
    return f"{mib / 1024:.1f} GB" if mib >= 1024 else f"{mib} MB"


TASKS = cards.TASKS
EXPLAINABILITY_WORDS = (*cards.EXPLANATIONS, "local", "global")

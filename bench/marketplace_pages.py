"""Server time of the marketplace pages over 100,000 solutions in PostgreSQL.

    .venv/bin/python bench/marketplace_pages.py                 (100,000 solutions, 200 requests per page)
    .venv/bin/python bench/marketplace_pages.py --quick         (5,000 solutions, 50 requests per page)
    .venv/bin/python bench/marketplace_pages.py --try-sql "CREATE INDEX ..."   (re-times the pages with it)

1. A database of its own (acumos_bench_<pid> on 127.0.0.1:5432, dropped at the end, also on Ctrl-C or an
   error), migrated, seeded by bench/seed_marketplace.py (see there: 2,000 owners, word-list names, Markdown
   descriptions, tags, model types, toolkits, licences, ~70% public / ~20% company / ~10% private, one ready
   revision each with artifacts; five featured public models with versions, ratings and comments);
   VACUUM (FULL for the solutions) ANALYZE.
2. acumos_portal/wsgi.py is imported, as runserver or a WSGI server does (it gc.freeze()s what is loaded).
   The pages are served in this process by Django's test Client: the real URLconf and middleware stack
   (sessions, CSRF, auth, messages), DEBUG off, a persistent database connection, templates rendered; what is
   timed is client.get() from the call until the response is complete (no network, no WSGI server).
   Warm-up first, then the pages in turn, one request each per round, so that whatever else the machine does
   falls on all of them alike. The catalog and search pages cache their result count and filter counts per
   audience and query (selectors.summary_of, in this process's LocMemCache): after the warm-up those rows are
   cache hits, what most visits get. The "counts cold" rows start a new cache generation before each request
   (services.catalog_changed(), untimed, as after any publish), so they show what a first visitor, or a
   query nobody asked since the last change, waits for.
3. The anchors, measured in the same rounds: PostgreSQL's own round trip (`SELECT 1` through Django's
   cursor), the same Django stack answering HttpResponse("ok") (a test-only URL added in front of the
   portal's URLconf), and the sign-in page (a real page: base layout, a form, no marketplace query). Ratios are
   page / sign-in page: the same machine, the same moment, so they travel better than milliseconds. The cold
   phase times its own sign-in page, and its ratios are to that one.
4. Printed: p50, p95, p99, max per page, the median time the same requests spent in the database (an
   execute_wrapper adds up each statement's time; the rest is Python: view, templates, middleware), ratios to
   the anchor, the verdict (target: p95 < 50 ms), the queries each page makes (counted on one request per
   URL, as CaptureQueriesContext would) with the slowest ones and any statement run more than once, and
   EXPLAIN (ANALYZE, BUFFERS) of the slowest query of the slowest page (and of the next pages over the target,
   three at most). Saved to bench/out/marketplace_pages.json.
5. --profile: cProfile of 20 requests of the slowest page (the portal's functions, template rendering, SQL).
6. --try-sql STATEMENT (repeatable): after the measurement, runs the statements in the bench database (e.g. an
   index), ANALYZEs, measures again and prints before and after side by side.

Exits 0 when it ran, whatever the verdict; 1 when a page did not answer 200.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import re
import statistics
import sys
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import harness
import seed_marketplace

BENCH = "marketplace_pages"
TARGET_MS = 50.0
ANCHOR_OK_URL = "/bench-anchor/ok/"
LOGIN_URL = "/accounts/login/"
MODEL_URL = "/models/{}/"
EXPLAIN_AT_MOST = 3
SLOWEST_SHOWN = 3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=int, help=f"default {seed_marketplace.DEFAULT_SOLUTIONS:,}")
    parser.add_argument("--requests", type=int, help="timed requests per page (default 200)")
    parser.add_argument("--warmup", type=int, help="untimed requests per page first (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{seed_marketplace.QUICK_SOLUTIONS:,} solutions, 50 requests, 10 warm-up (unless given)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile 20 requests of the slowest page: where its Python time goes")
    parser.add_argument("--try-sql", action="append", default=[], metavar="STATEMENT",
                        help="run this in the bench database after the measurement, then measure again")
    args = parser.parse_args(argv)
    defaults = (seed_marketplace.QUICK_SOLUTIONS, 50, 10) if args.quick else (
        seed_marketplace.DEFAULT_SOLUTIONS, 200, 20)
    for name, default in zip(("solutions", "requests", "warmup"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


# ---------------------------------------------------------------- what is timed

@dataclass
class Probe:
    """Something timed once per round: a page (cycling through its URLs) or an anchor."""

    label: str
    call: Callable[[int], int]  # round number -> HTTP status (200 for SELECT 1)
    urls: list[str] = field(default_factory=list)
    client: object = None
    anchor: bool = False
    before: Callable[[], None] | None = None  # run before each request, untimed (e.g. empty a cache)
    phase: str = "main"  # probes are timed together, round-robin, with the others of their phase
    reference: bool = False  # the anchor its phase's ratios are taken against
    times_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)  # of each timed request: its time in the database
    statuses: Counter = field(default_factory=Counter)

    def once(self, round_no: int, record: bool, sql: harness.SqlTimer) -> None:
        if self.before:
            self.before()
        sql.total_ms = 0.0
        started = time.perf_counter_ns()
        status = self.call(round_no)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        if record:
            self.times_ms.append(elapsed)
            self.sql_ms.append(sql.total_ms)
            self.statuses[status] += 1


def page(label: str, client, urls: list[str], *, cold: bool = False) -> Probe:
    """`cold`: the cached result count and filter counts are forgotten before each request (as after any
    change to the catalog), so the request computes them: what a first visitor, or a new query, waits for.
    Forgetting is global, so cold pages have a phase of their own, after the others."""
    def call(round_no: int) -> int:
        return client.get(urls[round_no % len(urls)]).status_code

    return Probe(label, call, urls=urls, client=client, before=forget_summaries if cold else None,
                 phase="cold" if cold else "main")


def sign_in_anchor(client, phase: str = "main") -> Probe:
    label = "anchor: sign-in page" + ("" if phase == "main" else f" ({phase} phase)")
    probe = page(label, client, [LOGIN_URL])
    probe.anchor, probe.reference, probe.phase = True, True, phase
    return probe


def ok_anchor(client) -> Probe:
    probe = page("anchor: HttpResponse('ok')", client, [ANCHOR_OK_URL])
    probe.anchor = True
    return probe


def forget_summaries() -> None:
    from django.core.cache import cache

    from marketplace import services

    changed = getattr(services, "catalog_changed", None)  # the portal's own way of starting afresh
    if changed:
        changed()
    else:
        cache.clear()


def select_one() -> Probe:
    from django.db import connection

    def call(round_no: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return 200

    return Probe("anchor: PostgreSQL SELECT 1", call, anchor=True)


def install_anchor_urlconf() -> None:
    """The portal's URLconf with one test-only URL in front: HttpResponse("ok") through the same stack."""
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import clear_url_caches, path

    def ok(request):
        return HttpResponse("ok")

    portal = importlib.import_module(settings.ROOT_URLCONF)
    module = types.ModuleType("bench_marketplace_urls")
    module.urlpatterns = [path(ANCHOR_OK_URL.strip("/") + "/", ok), *portal.urlpatterns]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


def clients(seeded: seed_marketplace.Seeded):
    from django.test import Client

    from acumos_portal.accounts.models import User

    anonymous, signed_in = Client(), Client()
    signed_in.force_login(User.objects.get(username=seeded.viewer))
    return anonymous, signed_in


def probes(seeded: seed_marketplace.Seeded) -> list[Probe]:
    anonymous, signed_in = clients(seeded)
    models = [MODEL_URL.format(pk) for pk in seeded.featured]
    word, rare, tag, toolkit = seeded.common_word, seeded.rare_word, seeded.common_tag, seeded.common_toolkit
    return [
        select_one(),
        ok_anchor(anonymous),
        sign_in_anchor(anonymous),
        page("catalog / (anonymous)", anonymous, ["/"]),
        page("catalog / (signed in)", signed_in, ["/"]),
        page(f"search ?q={word} (anonymous)", anonymous, [f"/?q={word}"]),
        page(f"search ?q={word} (signed in)", signed_in, [f"/?q={word}"]),
        page(f"search ?q={rare} (anonymous)", anonymous, [f"/?q={rare}"]),
        page("filter+sort (anonymous)", anonymous, [f"/?model_type=CL&toolkit={toolkit}&sort=downloads"]),
        page("search+filter+sort (signed in)", signed_in, [f"/?q={word}&tag={tag}&sort=rating"]),
        page(f"model page x{len(models)} (anonymous)", anonymous, models),
        page(f"model page x{len(models) + 1} (signed in)", signed_in,
             [*models, MODEL_URL.format(seeded.company)]),
        sign_in_anchor(anonymous, "cold"),
        page("catalog / (anonymous, counts cold)", anonymous, ["/"], cold=True),
        page(f"search ?q={word} (anonymous, counts cold)", anonymous, [f"/?q={word}"], cold=True),
        page(f"search ?q={rare} (anonymous, counts cold)", anonymous, [f"/?q={rare}"], cold=True),
        page("filter+sort (anonymous, counts cold)", anonymous,
             [f"/?model_type=CL&toolkit={toolkit}&sort=downloads"], cold=True),
    ]


# ---------------------------------------------------------------- measuring

def measure(all_probes: list[Probe], requests: int, warmup: int) -> None:
    for phase in dict.fromkeys(probe.phase for probe in all_probes):
        measure_together([probe for probe in all_probes if probe.phase == phase], requests, warmup)


def measure_together(all_probes: list[Probe], requests: int, warmup: int) -> None:
    from django.db import connection

    for probe in all_probes:
        probe.times_ms.clear()
        probe.sql_ms.clear()
        probe.statuses.clear()
    sql = harness.SqlTimer()
    with connection.execute_wrapper(sql):
        for round_no in range(warmup):
            for probe in all_probes:
                probe.once(round_no, record=False, sql=sql)
        for round_no in range(requests):
            for probe in all_probes:
                probe.once(round_no, record=True, sql=sql)


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the value below which pct% of the requests fall."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def stats(probe: Probe) -> dict:
    times = probe.times_ms
    return {"p50_ms": statistics.median(times), "p95_ms": percentile(times, 95), "p99_ms": percentile(times, 99),
            "max_ms": max(times), "mean_ms": statistics.fmean(times), "requests": len(times),
            "sql_p50_ms": statistics.median(probe.sql_ms),
            "statuses": dict(probe.statuses)}


# ---------------------------------------------------------------- queries

@dataclass
class QueryCost:
    sql: str  # with its parameters in place, as PostgreSQL ran it (what EXPLAIN needs)
    median_ms: float


@dataclass
class PageQueries:
    counts: dict[str, int]  # URL -> queries of one request
    slowest: list[QueryCost]
    repeated: list[tuple[int, str]]  # (times, SQL template): the same statement more than once in one request

    @property
    def shown(self) -> str:
        return "/".join(str(c) for c in sorted(set(self.counts.values())))


class QueryLog:
    """Every statement of a request with its own time (perf_counter, not the millisecond-rounded time of
    CaptureQueriesContext), its template (placeholders) and the SQL as run."""

    def __init__(self):
        self.entries: list[tuple[str, str, float]] = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            ran = connection.ops.last_executed_query(context["cursor"], sql, params) if params else sql
            self.entries.append((sql, ran, elapsed))


def page_queries(probe: Probe, repeats: int = 5) -> PageQueries:
    """The queries of one request per URL (counted), the slowest by median time over `repeats` requests,
    and the statements one request runs more than once (N+1 suspects)."""
    from django.db import connection

    counts, by_sql, repeated = {}, {}, Counter()
    for url in probe.urls:
        probe.client.get(url)  # a cold page before may have emptied the cache this one reads
        for attempt in range(repeats):
            if probe.before:
                probe.before()
            log = QueryLog()
            with connection.execute_wrapper(log):
                probe.client.get(url)
            for _template, ran, elapsed in log.entries:
                by_sql.setdefault(ran, []).append(elapsed)
            if attempt == 0:
                counts[url] = len(log.entries)
                templates = Counter(template for template, _ran, _elapsed in log.entries)
                repeated.update({t: n for t, n in templates.items() if n > 1 and n > repeated[t]})
    costs = sorted((QueryCost(sql, statistics.median(times)) for sql, times in by_sql.items()),
                   key=lambda cost: cost.median_ms, reverse=True)
    return PageQueries(counts, costs[:SLOWEST_SHOWN], [(n, t) for t, n in repeated.most_common(SLOWEST_SHOWN)])


def explain(sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) in a transaction that is rolled back (the query may write: view counters)."""
    from django.db import connection, transaction

    if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "INSERT", "DELETE")):
        return "(not explainable: " + sql[:60] + ")"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def profile(probe: Probe, requests: int = 20) -> str:
    """The portal's own functions, template rendering and SQL execution, by cumulative time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for round_no in range(requests):
        if probe.before:
            probe.before()
        probe.call(round_no)
    profiler.disable()
    out = io.StringIO()
    wanted = rf"({re.escape(str(harness.REPO))}/(?!\.venv)|render_to_string|backends/utils.py:\d+\(_execute\))"
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(wanted, 30)
    return out.getvalue()


def match_counts(seeded: seed_marketplace.Seeded) -> dict[str, int]:
    """How many solutions an anonymous visitor finds for the searched words (the count the page shows;
    a search by relevance ranks at most ACUMOS_RANK_WINDOW of them, the newest)."""
    from django.contrib.auth.models import AnonymousUser

    from marketplace.selectors import SearchParams, matching_solutions

    words = (seeded.common_word, seeded.rare_word)
    return {word: matching_solutions(AnonymousUser(), SearchParams(q=word)).count() for word in words}


# ---------------------------------------------------------------- printing

def fmt(ms: float) -> str:
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}x" if base else "-"


def verdict(probe: Probe, figures: dict) -> str:
    if probe.anchor:
        return ""
    if set(probe.statuses) != {200}:
        return "NO (status " + ",".join(str(s) for s in sorted(probe.statuses)) + ")"
    return "yes" if figures["p95_ms"] < TARGET_MS else "NO"


def results_table(all_probes: list[Probe], figures: dict[str, dict], queries: dict[str, PageQueries]) -> str:
    references = {p.phase: figures[p.label] for p in all_probes if p.reference}
    rows = []
    for probe in all_probes:
        f, login = figures[probe.label], references[probe.phase]
        shown = queries[probe.label].shown if probe.label in queries else "-"
        times = [fmt(f[key]) for key in ("sql_p50_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        rows.append([probe.label, shown, *times, ratio(f["p50_ms"], login["p50_ms"]),
                     ratio(f["p95_ms"], login["p95_ms"]), verdict(probe, f)])
    headers = ["page", "queries", "SQL p50", "p50 ms", "p95 ms", "p99 ms", "max ms", "p50/sign-in", "p95/sign-in",
               f"p95<{TARGET_MS:.0f}ms"]
    return harness.table(headers, rows)


def compare_table(pages: list[Probe], before: dict[str, dict], after: dict[str, dict]) -> str:
    rows = [[p.label, fmt(before[p.label]["p50_ms"]), fmt(after[p.label]["p50_ms"]),
             fmt(before[p.label]["p95_ms"]), fmt(after[p.label]["p95_ms"]),
             ratio(after[p.label]["p95_ms"], before[p.label]["p95_ms"])] for p in pages]
    return harness.table(["page", "p50 before", "p50 after", "p95 before", "p95 after", "p95 after/before"], rows)


def print_slowest(queries: dict[str, PageQueries]) -> None:
    print("\n== queries per page: the slowest (median of 5 requests per URL), and any run more than once ==")
    for label, found in queries.items():
        print(f"  {label}: {found.shown} queries")
        for cost in found.slowest:
            print(f"    {cost.median_ms:7.2f} ms  {one_line(cost.sql, 150)}")
        for times, template in found.repeated:
            print(f"    {times:4d} x     {one_line(template, 150)}")
        if len(set(found.counts.values())) > 1:
            for url, count in found.counts.items():
                print(f"    {count:4d} queries  {url}")


def one_line(sql: str, width: int) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def explain_pages(pages: list[Probe], figures: dict[str, dict], queries: dict[str, PageQueries]) -> dict[str, dict]:
    """The slowest page, and every page over the target, up to EXPLAIN_AT_MOST."""
    ranked = sorted(pages, key=lambda p: figures[p.label]["p95_ms"], reverse=True)
    chosen = [p for p in ranked if figures[p.label]["p95_ms"] >= TARGET_MS] or ranked[:1]
    plans = {}
    for probe in chosen[:EXPLAIN_AT_MOST]:
        slowest = queries[probe.label].slowest[0]
        print(f"\n== EXPLAIN ANALYZE: the slowest query of {probe.label} "
              f"(p95 {fmt(figures[probe.label]['p95_ms'])} ms; this query {slowest.median_ms:.2f} ms) ==")
        print(f"  {one_line(slowest.sql, 2000)}\n")
        plan = explain(slowest.sql)
        print("\n".join("  " + line for line in plan.splitlines()))
        plans[probe.label] = {"sql": slowest.sql, "median_ms": slowest.median_ms, "plan": plan}
    return plans


# ---------------------------------------------------------------- run

def run(args) -> int:
    wall = time.monotonic()
    with contextlib.ExitStack() as stack:
        data_dir = harness.scratch_dir(stack, "acumos-bench-pages-")
        url = stack.enter_context(seed_marketplace.scratch_database())
        print(f"== database {url.rsplit('/', 1)[1]}: migrating, seeding {args.solutions:,} solutions ==",
              flush=True)
        started = time.perf_counter()
        seed_marketplace.setup_django(url, Path(data_dir))
        migrate_s = time.perf_counter() - started
        seeded = seed_marketplace.seed(args.solutions, say=lambda line: print(line, flush=True))
        print(f"  seeded in {seeded.total_seconds:.1f} s (+ {migrate_s:.1f} s migrations): "
              + ", ".join(f"{v:,} {k}" for k, v in seeded.rows.items()), flush=True)
        matches = match_counts(seeded)
        print("  anonymous search matches: " + ", ".join(f"{w!r} {n:,}" for w, n in matches.items()))
        results = measure_and_report(args, seeded)
        results.update({"seed": {"solutions": args.solutions, "rows": seeded.rows, "seconds": seeded.seconds,
                                 "migrate_seconds": migrate_s, "matches": matches, "featured": seeded.featured}})
        path = harness.write_results(BENCH, results)
        print(f"\nwrote {path.relative_to(harness.REPO)}")
    print(f"database dropped, scratch removed; total wall time {time.monotonic() - wall:.0f} s")
    return 0 if results["all_200"] else 1


def measure_and_report(args, seeded: seed_marketplace.Seeded) -> dict:
    install_anchor_urlconf()
    # As runserver or any WSGI server loads the portal: acumos_portal/wsgi.py also settles the process
    # (gc.freeze of what is loaded) before the first request.
    importlib.import_module("acumos_portal.wsgi")
    all_probes = probes(seeded)
    pages = [p for p in all_probes if not p.anchor]
    print(f"\n== timing: {args.warmup} warm-up + {args.requests} timed requests per page, round-robin ==",
          flush=True)
    background = harness.check_quiet("the measurements")
    measure(all_probes, args.requests, args.warmup)
    figures = {p.label: stats(p) for p in all_probes}
    queries = {p.label: page_queries(p) for p in all_probes if p.client is not None}
    print(f"\n== server time per request, {args.solutions:,} solutions (ratios: to the sign-in page timed in the "
          "same rounds) ==")
    print(results_table(all_probes, figures, queries))
    print_slowest({label: q for label, q in queries.items() if label in {p.label for p in pages}})
    plans = explain_pages(pages, figures, queries)
    if args.profile:
        slowest = max(pages, key=lambda p: figures[p.label]["p95_ms"])
        print(f"\n== cProfile: 20 requests of {slowest.label} ==")
        print(profile(slowest))
    results = {"machine": harness.machine(), "background_cpu_pct": background, "requests": args.requests,
               "warmup": args.warmup, "target_p95_ms": TARGET_MS, "pages": figures,
               "queries": {label: {"counts": q.counts, "slowest": [vars(c) for c in q.slowest],
                                   "repeated": q.repeated} for label, q in queries.items()},
               "explained": plans,
               "all_200": all(set(p.statuses) == {200} for p in all_probes),
               "verdict": {p.label: verdict(p, figures[p.label]) for p in pages}}
    if args.try_sql:
        results["tried"] = try_sql(args, all_probes, pages, figures)
    missed = [p.label for p in pages if results["verdict"][p.label] != "yes"]
    print(f"\nverdict: {'every page p95 < 50 ms' if not missed else 'over target or not 200: ' + '; '.join(missed)}")
    return results


def try_sql(args, all_probes: list[Probe], pages: list[Probe], before: dict[str, dict]) -> dict:
    from django.db import connection

    print("\n== --try-sql ==")
    with connection.cursor() as cursor:
        for statement in args.try_sql:
            started = time.perf_counter()
            cursor.execute(statement)
            print(f"  {statement}  ({time.perf_counter() - started:.1f} s)")
        cursor.execute("ANALYZE")
    measure(all_probes, args.requests, args.warmup)
    after = {p.label: stats(p) for p in all_probes}
    print(compare_table(all_probes, before, after))
    queries = {p.label: page_queries(p) for p in pages}
    print_slowest(queries)
    return {"statements": args.try_sql, "pages": after}


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))

"""A realistic marketplace in a PostgreSQL database of its own, for the page benchmarks.

    .venv/bin/python bench/seed_marketplace.py                      (100,000 solutions; prints timings; drops it)
    .venv/bin/python bench/seed_marketplace.py --solutions 5000 --keep   (keeps the database and data dir)

Importable: bench/marketplace_pages.py uses scratch_database(), setup_django() and seed().

What it makes (seeded random generator, so two runs make the same marketplace):
- ~2,000 owners (how many solutions each has is skewed: a few own hundreds), a signed-in viewer who owns
  some of them and co-owns three more, a publisher;
- N solutions: names from word lists, Markdown descriptions of a few sentences, 0-5 of 200 tags, model types,
  toolkits and licences in skewed proportions, counters (views, downloads, ratings) spread log-normally,
  created over three years; one ready revision each with five artifacts (model package, metadata, model.proto,
  PROTOBUF.json, licence) pointing at a handful of real stored blobs (content-addressed, so one blob serves all);
- ~70% published to "Public Models", ~20% to "Company Models" only, ~10% private; a few pending publish requests;
- five featured public solutions (the model pages the bench times) with three versions, twenty ratings with
  reviews and threaded comments; the viewer's favorites and notifications.
Bulk rows go in with COPY; search_text is built as services.reindex builds it, then search_vector is set with
one UPDATE using services.search_vector_expression(); VACUUM FULL of the solutions (that UPDATE doubled
the table), then VACUUM ANALYZE of everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import harness

SERVER_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_SOLUTIONS = 100_000
QUICK_SOLUTIONS = 5_000
OWNERS = 2_000
TAGS = 200
FEATURED = 5
VIEWER = "bench-viewer"
PUBLISHER = "bench-publisher"
YEARS = 3

ADJECTIVES = (
    "Adaptive", "Bayesian", "Boosted", "Calibrated", "Causal", "Compact", "Contextual", "Convolutional", "Deep",
    "Distilled", "Ensemble", "Explainable", "Fast", "Federated", "Gradient", "Graph", "Hierarchical", "Hybrid",
    "Incremental", "Lightweight", "Linear", "Multilingual", "Neural", "Online", "Probabilistic", "Quantized",
    "Recurrent", "Robust", "Sparse", "Spatial", "Streaming", "Temporal", "Tiny", "Transformer", "Tuned", "Smart",
    "Accurate", "Scalable", "Realtime", "Open",
)
# Most frequent first: the weight of the k-th domain is 1/(k+1) (a Zipf law), so the first is common in
# names and descriptions and the last is rare. The bench searches for both.
DOMAINS = (
    "fraud", "churn", "sentiment", "image", "speech", "traffic", "energy", "retail", "credit", "medical",
    "network", "anomaly", "weather", "supply", "document", "invoice", "sensor", "vehicle", "satellite", "crop",
    "genome", "protein", "stock", "demand", "inventory", "customer", "email", "spam", "face", "voice",
    "translation", "recommendation", "music", "video", "radiology", "insurance", "claims", "maintenance",
    "turbine", "battery", "solar", "wind", "air", "water", "soil", "wildlife", "pricing", "logistics", "housing",
    "hiring", "legal", "patent", "news", "tweet", "review", "call", "chat", "ticket", "server", "log", "packet",
    "intrusion", "malware", "phishing", "payment", "loan", "mortgage", "diabetes", "cancer", "heart", "sleep",
    "gait", "handwriting", "receipt", "passport", "license", "parking", "flight", "railway", "shipping",
    "harbor", "glacier", "volcano", "coral", "zebrafish",
)
NOUNS = (
    "Classifier", "Detector", "Predictor", "Regressor", "Forecaster", "Segmenter", "Ranker", "Tagger", "Scorer",
    "Estimator", "Recognizer", "Encoder", "Summarizer", "Extractor", "Router", "Optimizer", "Clusterer", "Parser",
    "Model", "Analyzer", "Monitor", "Screener", "Matcher", "Labeler",
)
TECHNIQUES = (
    "random-forest", "xgboost", "lightgbm", "catboost", "logistic-regression", "svm", "knn", "naive-bayes",
    "cnn", "rnn", "lstm", "gru", "transformer", "bert", "gpt", "resnet", "unet", "yolo", "autoencoder", "gan",
    "diffusion", "gnn", "word2vec", "fasttext", "tf-idf", "pca", "kmeans", "dbscan", "arima", "prophet",
    "reinforcement-learning", "transfer-learning", "few-shot", "zero-shot", "distillation", "pruning",
    "quantization", "onnx-export", "federated-learning", "active-learning",
)
DATA_KINDS = (
    "tabular", "time-series", "text", "images", "audio", "video", "graphs", "geospatial", "logs", "clickstream",
    "sensor-data", "medical-images", "point-clouds", "documents", "transactions", "events", "multimodal",
    "streaming", "synthetic-data", "open-data",
)
INDUSTRIES = (
    "finance", "banking", "healthcare", "pharma", "telecom", "manufacturing", "automotive", "aerospace",
    "agriculture", "energy-sector", "utilities", "retail-sector", "e-commerce", "media", "gaming", "education",
    "government", "public-safety", "transport", "logistics-sector", "insurance-sector", "real-estate", "legal-tech",
    "hr-tech", "security", "climate", "oceanography", "biology", "chemistry", "physics",
)
QUALITIES = ("production-ready", "experimental", "benchmark", "baseline", "state-of-the-art", "explainable-ai",
             "fair-ml", "privacy-preserving", "edge", "gpu", "cpu-only", "low-latency", "batch", "demo", "tutorial",
             "multilingual", "english", "french", "german", "spanish", "open-weights", "small", "large", "fast",
             "accurate", "interpretable", "robust", "calibrated", "pretrained", "fine-tuned")
MODEL_TYPES = (("CL", 40), ("RG", 20), ("PR", 25), ("DS", 5), ("OT", 10))
TOOLKITS = (("sklearn", 35), ("pytorch", 18), ("tensorflow", 12), ("xgboost", 9), ("onnx", 8), ("lightgbm", 5),
            ("python", 5), ("keras", 4), ("h2o", 2), ("spark", 2))
LICENCES = (("Apache-2.0", 35), ("MIT", 25), ("BSD-3-Clause", 10), ("GPL-3.0", 5), ("CC-BY-4.0", 8),
            ("proprietary", 7), ("", 10))
FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
               "Radia", "Donald", "Hedy", "Tim", "Karen", "John", "Sophie", "Yann", "Fei-Fei", "Geoffrey", "Andrew",
               "Daphne", "Judea", "Cynthia", "Shafi", "Leslie", "Silvio", "Whitfield", "Martin", "Vint")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
              "Dijkstra", "Perlman", "Knuth", "Lamarr", "Berners-Lee", "Jones", "McCarthy", "Wilson", "LeCun", "Li",
              "Hinton", "Ng", "Koller", "Pearl", "Dwork", "Goldwasser", "Lamport", "Micali", "Diffie", "Hellman",
              "Cerf")
METRICS = ("accuracy", "F1", "AUC", "RMSE", "MAE", "precision", "recall", "mAP", "BLEU", "WER")
SENTENCES = (
    "This {noun} works on {data} data from {domain} {industry} use cases.",
    "It was trained with **{toolkit}** on {count:,} labelled examples and reaches a {metric} of {score:.2f} on a "
    "held-out set.",
    "Send one row per request; the `{method}` method answers with the {target}.",
    "Good for {domain} teams that need a quick baseline before building something bigger.",
    "Inputs:\n\n- `{field1}`: a number\n- `{field2}`: a number\n",
    "Retrained every {weeks} weeks; see the version notes for what changed.",
    "Known limits: it has not been checked on {other} data, and it is *not* calibrated for rare classes.",
    "Built by the {industry} analytics group as part of the {adj} {domain} programme.",
)

METHOD = "classify"  # the iris example's method: every seeded revision carries that bundle
BATCH = 10_000


def weighted(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    return [value for value, _ in pairs], [weight for _, weight in pairs]


# ---------------------------------------------------------------- the database

def database_url(name: str) -> str:
    return f"{SERVER_URL}/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def scratch_database(prefix: str = "acumos_bench") -> Iterator[str]:
    """A new database for this process (`<prefix>_<pid>`), dropped on the way out whatever happens;
    yields its URL. Django's connections to it are closed first (if Django is set up)."""
    name = f"{prefix}_{os.getpid()}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with harness.uninterrupted():
            _close_django_connections()
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        with contextlib.suppress(Exception):
            connections.close_all()


def setup_django(url: str, data_dir: Path, *, extra_hosts: Iterable[str] = ("testserver",)) -> None:
    """Settings are read from the environment once, by django.setup(); then the migrations run.
    DEBUG stays off (no query log, production templates) whatever the caller's environment says."""
    if str(harness.REPO) not in sys.path:
        sys.path.insert(0, str(harness.REPO))
    # The cache stays in this process (LocMemCache): a shared Redis could hold another run's entries.
    for name in ("DJANGO_DEBUG", "CELERY_BROKER_URL", "ACUMOS_STORAGE", "ACUMOS_FULL_TEXT", "ACUMOS_CACHE_URL",
                 "ACUMOS_SUMMARY_SECONDS"):
        os.environ.pop(name, None)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ACUMOS_DATA_DIR": str(data_dir),
        "DATABASE_URL": url,
        "DJANGO_ALLOWED_HOSTS": ",".join(("127.0.0.1", "localhost", *extra_hosts)),
    })
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


# ---------------------------------------------------------------- what seed() returns

@dataclass
class Seeded:
    solutions: int = 0
    owners: int = 0
    viewer: str = VIEWER
    featured: list[str] = field(default_factory=list)  # public solutions with versions, ratings and comments
    company: str = ""  # a solution only signed-in users see
    common_word: str = DOMAINS[0]
    rare_word: str = DOMAINS[-1]
    common_tag: str = ""
    common_toolkit: str = TOOLKITS[0][0]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


class _Steps:
    """Times each step of the seeding and says what it is doing."""

    def __init__(self, seeded: Seeded, say: Callable[[str], None]):
        self.seeded, self.say = seeded, say

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seeded.seconds[name] = time.perf_counter() - started
        self.say(f"  {name:<40} {self.seeded.seconds[name]:6.1f} s")


# ---------------------------------------------------------------- COPY

def copy_rows(model, columns: list[str], rows: Iterable[tuple]) -> int:
    """COPY rows into `model`'s table. `columns` are attribute names (owner_id, not owner); values are
    what PostgreSQL reads as text (a JSON column takes a JSON string)."""
    from django.db import connection, transaction

    by_attname = {f.attname: f.column for f in model._meta.concrete_fields}
    quoted = ", ".join(connection.ops.quote_name(by_attname[c]) for c in columns)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({quoted}) FROM STDIN"
    connection.ensure_connection()
    count = 0
    with transaction.atomic(), connection.connection.cursor() as cursor:
        # The rows are generated consistent; checking each foreign key of each row would take most of the time.
        cursor.execute("SET LOCAL session_replication_role = replica")
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


# ---------------------------------------------------------------- the marketplace

@dataclass
class _Draft:
    """One solution as generated, before it goes in."""

    id: uuid.UUID
    owner: int
    name: str
    description: str
    model_type: str
    toolkit: str
    licence: str
    tags: list[int]
    audience: int
    created: datetime
    modified: datetime
    views: int
    downloads: int
    rating_count: int
    rating_sum: int


class _Generator:
    def __init__(self, rng: random.Random, now: datetime):
        self.rng, self.now = rng, now
        self.domain_weights = [1 / (k + 1) for k in range(len(DOMAINS))]
        self.types, self.type_weights = weighted(MODEL_TYPES)
        self.toolkits, self.toolkit_weights = weighted(TOOLKITS)
        self.licences, self.licence_weights = weighted(LICENCES)

    def domain(self) -> str:
        return self.rng.choices(DOMAINS, self.domain_weights)[0]

    def name(self) -> str:
        rng = self.rng
        return f"{rng.choice(ADJECTIVES)} {self.domain().title()} {rng.choice(NOUNS)}"

    def description(self, name: str, toolkit: str) -> str:
        rng = self.rng
        values = {"noun": name.rsplit(maxsplit=1)[-1].lower(), "data": rng.choice(DATA_KINDS), "domain": self.domain(),
                  "industry": rng.choice(INDUSTRIES), "toolkit": toolkit, "count": rng.randrange(1_000, 2_000_000),
                  "metric": rng.choice(METRICS), "score": rng.uniform(0.6, 0.99), "method": METHOD,
                  "target": rng.choice(("class", "score", "label", "forecast")), "field1": "sepal_length",
                  "field2": "petal_width", "weeks": rng.randrange(1, 9), "other": rng.choice(DATA_KINDS),
                  "adj": rng.choice(ADJECTIVES).lower()}
        picked = [SENTENCES[0], *rng.sample(SENTENCES[1:], rng.randrange(1, 5))]
        return " ".join(s.format(**values) for s in picked).replace(" Inputs:", "\n\nInputs:")

    def counters(self) -> tuple[int, int, int, int]:
        rng = self.rng
        views = int(rng.lognormvariate(4.0, 1.6))
        downloads = int(views * rng.uniform(0.0, 0.3))
        ratings = min(int(rng.lognormvariate(0.3, 1.2)), max(views // 5, 0))
        mean = min(5.0, max(1.0, rng.gauss(3.8, 0.7)))
        return views, downloads, ratings, round(mean * ratings)

    def audience(self) -> int:
        draw = self.rng.random()
        return 2 if draw < 0.70 else 1 if draw < 0.90 else 0

    def created(self) -> tuple[datetime, datetime]:
        age = self.rng.uniform(0, YEARS * 365 * 86400)
        created = self.now - timedelta(seconds=age)
        return created, created + timedelta(seconds=self.rng.uniform(0, age))

    def draft(self, owner: int, name: str, tag_ids: list[int], tag_weights: list[float]) -> _Draft:
        rng = self.rng
        toolkit = rng.choices(self.toolkits, self.toolkit_weights)[0]
        created, modified = self.created()
        views, downloads, rating_count, rating_sum = self.counters()
        tags = sorted(set(rng.choices(tag_ids, tag_weights, k=rng.randrange(0, 6))))
        return _Draft(uuid.uuid4(), owner, name, self.description(name, toolkit),
                      rng.choices(self.types, self.type_weights)[0], toolkit,
                      rng.choices(self.licences, self.licence_weights)[0], tags, self.audience(), created, modified,
                      views, downloads, rating_count, rating_sum)


def _owner_weights(count: int) -> list[float]:
    """A few prolific owners, a long tail of occasional ones."""
    return [1 / math.sqrt(k + 1) for k in range(count)]


def _tag_names() -> list[str]:
    names = list(dict.fromkeys([*TECHNIQUES, *DATA_KINDS, *INDUSTRIES, *QUALITIES, *DOMAINS]))
    return names[:TAGS]


# ---------------------------------------------------------------- steps

def _make_users(generator: _Generator) -> tuple[list, object, object]:
    from django.contrib.auth.hashers import make_password

    from acumos_portal.accounts import services as account_services
    from acumos_portal.accounts.choices import Role
    from acumos_portal.accounts.models import User

    rng = generator.rng
    password = make_password("bench-" + uuid.uuid4().hex)  # hashed once: nobody signs in with it
    users = [User(username=f"{rng.choice(FIRST_NAMES).lower()}.{rng.choice(LAST_NAMES).lower()}{k}",
                  first_name=rng.choice(FIRST_NAMES), last_name=rng.choice(LAST_NAMES), password=password,
                  email=f"owner{k}@example.com", organization=rng.choice(INDUSTRIES))
             for k in range(OWNERS - 2)]
    users.insert(OWNERS // 3, User(username=VIEWER, first_name="Vera", last_name="Viewer", password=password))
    users.append(User(username=PUBLISHER, first_name="Pat", last_name="Publisher", password=password))
    User.objects.bulk_create(users, batch_size=BATCH)
    users = list(User.objects.order_by("pk"))
    publisher = next(u for u in users if u.username == PUBLISHER)
    viewer = next(u for u in users if u.username == VIEWER)
    account_services.grant_role(publisher, Role.PUBLISHER)
    return [u for u in users if u is not publisher], viewer, publisher


def _make_tags() -> list[int]:
    from marketplace.models import Tag

    Tag.objects.bulk_create([Tag(name=name) for name in _tag_names()])
    return list(Tag.objects.order_by("pk").values_list("pk", flat=True))


def _drafts(generator: _Generator, count: int, owners: list, tag_ids: list[int]) -> list[_Draft]:
    rng = generator.rng
    owner_ids = [u.pk for u in owners]
    owner_picks = rng.choices(owner_ids, _owner_weights(len(owner_ids)), k=count)
    tag_weights = [1 / (k + 1) ** 0.8 for k in range(len(tag_ids))]
    taken: set[tuple[int, str]] = set()
    drafts = []
    for owner in owner_picks:
        name = generator.name()
        unique, n = name, 2
        while (owner, unique) in taken:  # the same owner cannot have two solutions of one name
            unique, n = f"{name} {n}", n + 1
        taken.add((owner, unique))
        drafts.append(generator.draft(owner, unique, tag_ids, tag_weights))
    return drafts


def _search_text(draft: _Draft, author: str, tag_names: dict[int, str]) -> str:
    """As services.reindex writes it: name, description, tags, author, toolkit, licence; lower case."""
    tags = " ".join(tag_names[t] for t in draft.tags)
    return "\n".join([draft.name, draft.description, tags, author, draft.toolkit, draft.licence]).lower()


def _copy_solutions(drafts: list[_Draft], authors: dict[int, str], tag_names: dict[int, str]) -> int:
    from marketplace.models import Solution

    columns = ["id", "owner_id", "name", "description", "model_type", "toolkit", "licence", "created", "modified",
               "audience", "view_count", "download_count", "rating_count", "rating_sum", "rating_avg",
               "search_text", "imported_from"]
    rows = ((d.id, d.owner, d.name, d.description, d.model_type, d.toolkit, d.licence, d.created, d.modified,
             d.audience, d.views, d.downloads, d.rating_count, d.rating_sum,
             d.rating_sum / d.rating_count if d.rating_count else 0.0,
             _search_text(d, authors[d.owner], tag_names), "") for d in drafts)
    return copy_rows(Solution, columns, rows)


def _copy_tags(drafts: list[_Draft]) -> int:
    from marketplace.models import Solution

    through = Solution.tags.through
    return copy_rows(through, ["solution_id", "tag_id"], ((d.id, t) for d in drafts for t in d.tags))


@dataclass
class _Blobs:
    """The stored files every seeded revision points at, by artifact kind (licence: by keyword)."""

    by_kind: dict[str, int]
    licences: dict[str, int]
    metadata: str


def _store_blobs() -> _Blobs:
    """The iris example's real bundle (model.proto, metadata.json, modelpackage.zip with its sample), its
    PROTOBUF.json as onboarding writes it, and a licence profile per keyword: what the model page reads."""
    from marketplace import storage
    from marketplace.descriptors import protobuf_json
    from runner_image.protos import compile_proto

    with tempfile.TemporaryDirectory(prefix="acumos-bench-bundle-") as tmp:
        bundle = harness.load_example().make_bundle(Path(tmp) / "iris")
        files = {"PB": "model.proto", "MD": "metadata.json", "MI": "modelpackage.zip"}
        by_kind = {kind: storage.store_file(bundle / name)[0].pk for kind, name in files.items()}
        proto_text = (bundle / "model.proto").read_text()
        metadata = (bundle / "metadata.json").read_text()
    descriptor = json.dumps(protobuf_json(compile_proto(proto_text)), indent=2, sort_keys=True)
    by_kind["PJ"] = storage.store_text(descriptor, ".json")[0].pk
    licences = {keyword: storage.store_text(json.dumps({"keyword": keyword or "unlicensed"}), ".json")[0].pk
                for keyword, _ in LICENCES}
    return _Blobs(by_kind, licences, json.dumps(json.loads(metadata)))


def _copy_revisions(drafts: list[_Draft], blobs: _Blobs) -> tuple[dict[uuid.UUID, uuid.UUID], int]:
    from marketplace.choices import ARTIFACT_FILE_NAMES
    from marketplace.models import Artifact, Revision

    revisions = {d.id: uuid.uuid4() for d in drafts}
    columns = ["id", "solution_id", "version", "status", "description", "metadata", "created_by_id", "created",
               "ready_at", "resources", "card", "interface"]
    copy_rows(Revision, columns, ((revisions[d.id], d.id, "1.0.0", "ready", "", blobs.metadata, d.owner, d.created,
                                   d.created, "{}", "{}", "{}") for d in drafts))
    kinds = ("MI", "MD", "PB", "PJ", "LI")

    def artifact_rows():
        for d in drafts:
            for kind in kinds:
                blob = blobs.licences[d.licence] if kind == "LI" else blobs.by_kind[kind]
                yield uuid.uuid4(), revisions[d.id], kind, ARTIFACT_FILE_NAMES[kind], blob, "", d.created

    artifacts = copy_rows(Artifact, ["id", "revision_id", "kind", "name", "blob_id", "uri", "created"],
                          artifact_rows())
    return revisions, artifacts


def _copy_publications(drafts: list[_Draft], revisions: dict, publisher, rng: random.Random) -> int:
    """Public solutions went through review (approved_by); a quarter of them are in Company Models too."""
    from marketplace.models import Catalog, Publication

    public = Catalog.objects.get(name="Public Models").pk
    company = Catalog.objects.get(name="Company Models").pk

    def rows():
        for d in drafts:
            if d.audience == 2:
                yield public, d.id, revisions[d.id], d.owner, publisher.pk, d.created
            if d.audience == 1 or (d.audience == 2 and rng.random() < 0.25):
                yield company, d.id, revisions[d.id], d.owner, None, d.created

    columns = ["catalog_id", "solution_id", "revision_id", "published_by_id", "approved_by_id", "created"]
    return copy_rows(Publication, columns, rows())


def _pending_requests(drafts: list[_Draft], revisions: dict, count: int = 100) -> int:
    from marketplace.models import Catalog, PublishRequest

    public = Catalog.objects.get(name="Public Models")
    private = [d for d in drafts if d.audience == 0][:count]
    PublishRequest.objects.bulk_create([
        PublishRequest(solution_id=d.id, revision_id=revisions[d.id], catalog=public, requested_by_id=d.owner,
                       message="Ready for everyone, please review.") for d in private])
    return len(private)


def _search_vectors() -> int:
    from marketplace import services
    from marketplace.models import Solution

    return Solution.objects.update(search_vector=services.search_vector_expression())


# ---------------------------------------------------------------- the pages the bench opens

def _feature(drafts: list[_Draft], revisions: dict, owners: list, viewer, rng: random.Random) -> list[str]:
    """The first FEATURED public solutions get two more versions, twenty ratings and threaded comments."""
    from marketplace.models import Artifact, Comment, Rating, Revision, Solution

    featured = [d for d in drafts if d.audience == 2 and d.owner != viewer.pk][:FEATURED]
    raters = [u for u in owners if u.pk != viewer.pk]
    for draft in featured:
        first = Revision.objects.get(pk=revisions[draft.id])
        for step, version in enumerate(("1.1.0", "2.0.0"), 1):
            when = draft.created + timedelta(days=30 * step)
            newer = Revision.objects.create(solution_id=draft.id, version=version, status="ready",
                                            metadata=first.metadata, created_by_id=draft.owner, ready_at=when)
            Revision.objects.filter(pk=newer.pk).update(created=when)
            Artifact.objects.bulk_create([Artifact(revision=newer, kind=a.kind, name=a.name, blob_id=a.blob_id)
                                          for a in first.artifacts.all()])
        people = rng.sample(raters, 30)
        Rating.objects.bulk_create([
            Rating(solution_id=draft.id, user=u, stars=rng.choice((3, 4, 4, 5, 5)),
                   review=rng.choice(("", "Worked out of the box.", "Good baseline, **fast** to call.",
                                      "Accuracy was lower on our data than stated.")))
            for u in people[:20]])
        top = Comment.objects.bulk_create([
            Comment(solution_id=draft.id, author=u, text=f"Question {k + 1}: does it handle missing values?")
            for k, u in enumerate(people[20:30])])
        Comment.objects.bulk_create([
            Comment(solution_id=draft.id, parent=top[k % len(top)], author=people[(k * 7) % 30],
                    text=f"Reply {k + 1}: it does, if you impute them first.") for k in range(20)])
        stars = list(Rating.objects.filter(solution_id=draft.id).values_list("stars", flat=True))
        Solution.objects.filter(pk=draft.id).update(rating_count=len(stars), rating_sum=sum(stars),
                                                    rating_avg=sum(stars) / len(stars))
    return [str(d.id) for d in featured]


def _viewer_extras(drafts: list[_Draft], viewer, rng: random.Random) -> None:
    """The signed-in viewer co-owns three private solutions, has favorites and 15 notifications (5 unread)."""
    from marketplace.models import Favorite, Notification, SolutionShare

    others_private = [d for d in drafts if d.audience == 0 and d.owner != viewer.pk][100:103]
    SolutionShare.objects.bulk_create([SolutionShare(solution_id=d.id, user=viewer, shared_by_id=d.owner)
                                       for d in others_private])
    visible = [d for d in drafts if d.audience > 0]
    Favorite.objects.bulk_create([Favorite(solution_id=d.id, user=viewer)
                                  for d in rng.sample(visible, min(12, len(visible)))])
    Notification.objects.bulk_create([
        Notification(user=viewer, kind="comment", title=f"New comment on a model of yours ({k})",
                     url="/my-models/") for k in range(15)])
    ids = list(Notification.objects.filter(user=viewer).order_by("pk").values_list("pk", flat=True)[:10])
    Notification.objects.filter(pk__in=ids).update(read_at=datetime.now().astimezone())


def _vacuum_analyze() -> None:
    """The search_vector UPDATE rewrote every solution row: FULL compacts the table again (a bulk load
    artefact, not the steady state of a live site); then statistics and visibility maps for everything."""
    from django.db import connection

    from marketplace.models import Solution

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM FULL {connection.ops.quote_name(Solution._meta.db_table)}")
        cursor.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------- seed()

def seed(count: int = DEFAULT_SOLUTIONS, *, rng_seed: int = 0, say: Callable[[str], None] = print) -> Seeded:
    """Fill the (migrated, empty) database Django is configured for. Returns what the bench needs."""
    from acumos_portal.accounts.models import User
    from marketplace.models import Tag

    rng = random.Random(rng_seed)
    generator = _Generator(rng, datetime.now().astimezone())
    seeded = Seeded(solutions=count)
    steps = _Steps(seeded, say)
    with steps.step("users and tags"):
        owners, viewer, publisher = _make_users(generator)
        tag_ids = _make_tags()
        tag_names = dict(Tag.objects.values_list("pk", "name"))
        authors = {u.pk: f"{u.username} {u.get_full_name()}".strip() for u in User.objects.all()}
    with steps.step("generate solutions (Python)"):
        drafts = _drafts(generator, count, owners, tag_ids)
    with steps.step("COPY solutions and tags"):
        seeded.rows["solutions"] = _copy_solutions(drafts, authors, tag_names)
        seeded.rows["solution tags"] = _copy_tags(drafts)
    with steps.step("blobs, COPY revisions and artifacts"):
        revisions, seeded.rows["artifacts"] = _copy_revisions(drafts, _store_blobs())
        seeded.rows["revisions"] = len(revisions)
    with steps.step("COPY publications, requests"):
        seeded.rows["publications"] = _copy_publications(drafts, revisions, publisher, rng)
        seeded.rows["pending requests"] = _pending_requests(drafts, revisions)
    with steps.step("featured pages, viewer"):
        seeded.featured = _feature(drafts, revisions, owners, viewer, rng)
        _viewer_extras(drafts, viewer, rng)
        seeded.company = str(next(d.id for d in drafts if d.audience == 1 and d.owner != viewer.pk))
    with steps.step("UPDATE search_vector"):
        _search_vectors()
    with steps.step("VACUUM FULL solutions, VACUUM ANALYZE"):
        _vacuum_analyze()
    seeded.owners = len(owners)
    tag_counts = dict.fromkeys(tag_ids, 0)
    for d in drafts:
        for t in d.tags:
            tag_counts[t] += 1
    seeded.common_tag = tag_names[max(tag_counts, key=tag_counts.get)]
    return seeded


# ---------------------------------------------------------------- as a script

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=int, default=DEFAULT_SOLUTIONS, help="how many solutions")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SOLUTIONS:,} solutions")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and data dir (prints how to reach them; drop it yourself)")
    return parser.parse_args(argv)


def run(args) -> int:
    count = QUICK_SOLUTIONS if args.quick else args.solutions
    if args.keep:
        name = f"acumos_bench_keep_{os.getpid()}"
        _admin(f'CREATE DATABASE "{name}"')
        data_dir = Path(tempfile.mkdtemp(prefix="acumos-bench-seed-"))
        _seed_and_report(database_url(name), data_dir, count)
        print(f"kept: DATABASE_URL={database_url(name)} ACUMOS_DATA_DIR={data_dir}\n"
              f"drop with: psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE \"{name}\"'")
        return 0
    with tempfile.TemporaryDirectory(prefix="acumos-bench-seed-") as data_dir, scratch_database() as url:
        _seed_and_report(url, Path(data_dir), count)
    print("database dropped, data dir removed")
    return 0


def _seed_and_report(url: str, data_dir: Path, count: int) -> Seeded:
    started = time.perf_counter()
    setup_django(url, data_dir)
    print(f"migrated in {time.perf_counter() - started:.1f} s; seeding {count:,} solutions", flush=True)
    seeded = seed(count, say=lambda line: print(line, flush=True))
    print(f"seeded in {seeded.total_seconds:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in seeded.rows.items()))
    return seeded


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))

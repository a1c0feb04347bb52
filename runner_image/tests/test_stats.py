"""Drift statistics: the sketch and the scores against hand-computed values and scipy, the statistics and
drift routes in-process, and with two real worker processes whose windows merge."""

from __future__ import annotations

import http.client
import json
import math
import random
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon
from sklearn.datasets import load_iris

from runner_image import sketch
from runner_image.codec import message_from_dict
from runner_image.pack import pack_bundle
from runner_image.protos import compile_proto
from runner_image.sketch import Categories, FieldStats
from runner_image.stats import fields_of

from . import builders
from .conftest import auth, runner_client

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = load_iris().data


@pytest.fixture(scope="module")
def iris_columns(tmp_path_factory) -> Path:
    """The iris example taking repeated columns: one request carries many rows."""
    return builders.iris_bundle(tmp_path_factory.mktemp("iris-columns"), repeated=True)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    """Repeated strings and numbers in, their count out: to flood the statistics with values."""

    def count(words: list, x: list):
        return {"n": len(words) + len(x)}

    return pack_bundle(model=count, flavour="python", name="Bags", method="count",
                       inputs="words:repeated string,x:repeated double", outputs="n:int64",
                       out=tmp_path_factory.mktemp("bags"), sample={"words": ["a"], "x": [1.0]})


def draws(seed: int, n: int, shift: dict | None = None) -> list[dict]:
    """n iris-like rows: rows of the data set with a little noise, some features moved by `shift`."""
    rng = np.random.default_rng(seed)
    rows = IRIS[rng.integers(0, len(IRIS), n)] + rng.normal(0, 0.1, (n, 4))
    return [{f: float(v) + (shift or {}).get(f, 0.0) for f, v in zip(FEATURES, row, strict=True)} for row in rows]


def columns(rows: list[dict]) -> dict:
    return {f: [row[f] for row in rows] for f in FEATURES}


def predict_rows(client, rows: list[dict], per_request: int = 100) -> None:
    for i in range(0, len(rows), per_request):
        response = client.post("/model/methods/classify", json=columns(rows[i:i + per_request]))
        assert response.status_code == 200, response.text


def drift(client, **params) -> dict:
    response = client.get("/model/statistics/drift", headers=auth(), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def only_group(report: dict, **where) -> dict:
    groups = [g for g in report["groups"] if all(g[k] == v for k, v in where.items())]
    assert len(groups) == 1, report["groups"]
    return groups[0]


# ---------------------------------------------------------------- the sketch

def test_quantiles_are_within_the_stated_relative_error():
    rng = np.random.default_rng(3)
    for values in (rng.lognormal(0, 2, 20_000), rng.normal(0, 50, 20_000), rng.uniform(1, 2, 5_000)):
        stats = FieldStats(sketch.NUMBER, 10)
        for v in values:
            stats.add_number(float(v))
        for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
            exact = float(np.quantile(values, q, method="lower"))
            assert abs(stats.histogram.quantile(q) - exact) <= sketch.RELATIVE_ACCURACY * abs(exact) + 1e-9


def test_merge_is_associative_and_equals_the_sketch_of_everything():
    rng = np.random.default_rng(5)
    # spread over ~40 decades: far more than MAX_BUCKETS buckets, so merging also collapses
    parts = [list(rng.choice([-1, 1], 4000) * 10 ** rng.uniform(-15, 25, 4000)) for _ in range(3)]
    a, b, c = (fields_of_values(p) for p in parts)
    everything = fields_of_values(parts[0] + parts[1] + parts[2])
    left = copy(a).merge(copy(b)).merge(copy(c))
    right = copy(a).merge(copy(b).merge(copy(c)))
    swapped = copy(c).merge(copy(a)).merge(copy(b))
    for merged in (left, right, swapped):
        assert merged.to_json()["h"] == everything.to_json()["h"]  # to_json collapses to MAX_BUCKETS
        assert len(merged.histogram.counts) <= sketch.MAX_BUCKETS
        assert merged.moments.n == everything.moments.n == 12_000
        assert merged.moments.min == everything.moments.min and merged.moments.max == everything.moments.max
        assert merged.moments.mean == pytest.approx(everything.moments.mean, rel=1e-9)
        assert merged.moments.std == pytest.approx(everything.moments.std, rel=1e-9)


def fields_of_values(values) -> FieldStats:
    stats = FieldStats(sketch.NUMBER, 10)
    for v in values:
        stats.add_number(float(v))
    return stats


def copy(stats: FieldStats) -> FieldStats:
    return FieldStats.from_json(json.loads(json.dumps(stats.to_json())), 10)


def test_extreme_numbers_keep_the_histogram_bounded_and_the_top_accurate():
    stats = FieldStats(sketch.NUMBER, 10)
    rng = random.Random(1)
    for _ in range(50_000):
        stats.add_number(rng.choice((-1, 1)) * 10 ** rng.uniform(-300, 300))
    for special in (math.nan, math.inf, -math.inf, 0.0, 5e-324, 1.7976931348623157e308):
        stats.add_number(special)
    assert len(stats.histogram.counts) <= 2 * sketch.MAX_BUCKETS
    encoded = json.dumps(stats.to_json())
    assert len(stats.histogram.counts) <= sketch.MAX_BUCKETS
    assert len(encoded) < 16_000
    assert stats.nan == 1 and stats.inf == 2 and stats.count == 50_006
    assert stats.moments.max == 1.7976931348623157e308
    assert stats.histogram.quantile(1.0) == pytest.approx(1.7976931348623157e308, rel=0.011)


def test_categories_keep_the_top_k_and_count_the_rest():
    categories = Categories(cap=50)
    for i in range(100_000):
        categories.add(f"value-{i}")
    for _ in range(1000):
        categories.add("frequent")
    assert len(categories.counts) <= 100
    counts, other = categories.to_json()
    assert len(counts) == 50
    assert categories.total == 101_000
    assert counts["frequent"] == 1000
    assert len(json.dumps([counts, other])) < 4_000
    long_value = sketch.category_of("x" * 1_000_000)
    assert len(long_value) == sketch.MAX_CATEGORY_CHARS + 1


# ---------------------------------------------------------------- the scores

def test_psi_matches_a_hand_computation():
    # shares 0.1/0.2/0.7 against 0.2/0.2/0.6, and an empty bin taken as 1e-4
    expected = (0.2 - 0.1) * math.log(0.2 / 0.1) + 0 + (0.6 - 0.7) * math.log(0.6 / 0.7)
    assert sketch.psi([10, 20, 70], [20, 20, 60]) == pytest.approx(expected, rel=1e-12)
    assert sketch.psi([50, 50, 0], [50, 50, 0]) == 0.0
    with_empty = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert sketch.psi([50, 50], [0, 100]) == pytest.approx(with_empty, rel=1e-12)


def test_psi_bins_at_the_reference_deciles():
    reference = fields_of_values(np.random.default_rng(1).normal(10, 2, 10_000)).histogram
    edges = sketch.psi_bins(reference)
    assert len(edges) == 9
    shares = [count / 10_000 for count in sketch.binned(reference, edges)]
    largest_bucket = max(reference.counts.values()) / 10_000  # an edge falls on a bucket, not between values
    assert all(abs(share - 0.1) <= largest_bucket for share in shares), shares
    assert sum(shares) == pytest.approx(1.0)
    assert sketch.histogram_psi(reference, reference) == 0.0


def test_chi_squared_matches_hand_computation_and_scipy():
    # 2 x 2: a 20/0 against 10/10: expected 15/5 each row; statistic 4 * (5^2 / 15 + 5^2 / 5) / 2
    statistic, df, p = sketch.chi_squared({"a": 10, "b": 10}, {"a": 20})
    assert statistic == pytest.approx(2 * (25 / 15 + 25 / 5), rel=1e-12)
    assert df == 1
    assert p == pytest.approx(scipy_stats.chi2.sf(statistic, 1), rel=1e-9)
    reference = {"a": 120, "b": 45, "c": 30, "d": 5}
    current = {"a": 100, "b": 70, "c": 20, "e": 10}
    statistic, df, p = sketch.chi_squared(reference, current)
    names = sorted(set(reference) | set(current))
    table = [[reference.get(n, 0) for n in names], [current.get(n, 0) for n in names]]
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert df == expected.dof
    assert p == pytest.approx(expected.pvalue, rel=1e-6)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 49, 200])
def test_chi2_survival_function_matches_scipy(df):
    for x in (0.01, 0.5, 1, 2, 5, 10, 30, 60, 100, 250, 400):
        assert sketch.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-7, abs=1e-300)


def test_jensen_shannon_matches_scipy():
    reference = {"a": 120, "b": 45, "c": 30, "d": 5}
    current = {"a": 100, "b": 70, "c": 20, "e": 10}
    names = sorted(set(reference) | set(current))
    expected = jensenshannon([reference.get(n, 0) for n in names], [current.get(n, 0) for n in names])
    assert sketch.jensen_shannon(reference, current) == pytest.approx(expected, rel=1e-9)
    assert sketch.jensen_shannon({"a": 1}, {"b": 1}) == pytest.approx(math.sqrt(math.log(2)), rel=1e-12)


def test_wasserstein_on_sketches_is_close_to_scipy_on_the_values():
    rng = np.random.default_rng(7)
    for ref_values, cur_values in (
        (rng.normal(5, 1, 5000), rng.normal(5, 1, 5000)),
        (rng.normal(5, 1, 5000), rng.normal(5.5, 1.2, 5000)),
        (rng.lognormal(1, 0.5, 5000), rng.lognormal(1.3, 0.5, 5000)),
    ):
        reference, current = fields_of_values(ref_values), fields_of_values(cur_values)
        got = sketch.wasserstein(reference.histogram, current.histogram)
        exact = scipy_stats.wasserstein_distance(ref_values, cur_values)
        # each value moves at most 1 % to its bucket's value
        assert abs(got - exact) <= 0.01 * float(np.mean(np.abs(np.concatenate([ref_values, cur_values]))))




def test_kolmogorov_smirnov_on_sketches_matches_scipy_on_the_values():
    rng = np.random.default_rng(11)
    for ref_values, cur_values in (
        (rng.normal(5, 1, 150), rng.normal(5, 1, 160)),
        (rng.normal(0, 1, 150), rng.normal(0.5, 1, 150)),
        (rng.lognormal(1, 0.5, 800), rng.lognormal(1.1, 0.5, 900)),
    ):
        reference, current = fields_of_values(ref_values), fields_of_values(cur_values)
        statistic = sketch.kolmogorov_smirnov(reference.histogram, current.histogram)
        exact = scipy_stats.ks_2samp(ref_values, cur_values)
        assert abs(statistic - exact.statistic) <= 0.02  # values within 1 % of each other fall in one bucket
        n1, n2 = len(ref_values), len(cur_values)
        effective = math.sqrt(n1 * n2 / (n1 + n2))  # Kolmogorov's limit with Stephens' correction
        expected = scipy_stats.kstwobign.sf((effective + 0.12 + 0.11 / effective) * statistic)
        assert sketch.ks_p_value(statistic, n1, n2) == pytest.approx(expected, rel=1e-6, abs=1e-4)
        # the decision at 5 % is scipy's exact test's
        assert (statistic > sketch.ks_critical(n1, n2, 0.05)) == (exact.pvalue < 0.05)
    assert sketch.ks_p_value(sketch.ks_critical(150, 150, 0.05), 150, 150) == pytest.approx(0.05, rel=1e-3)


def test_small_samples_are_judged_by_a_test_not_a_fixed_distance():
    """Two samples of 150 values from one distribution: Wasserstein's fixed 0.1 bound is within its noise, so
    KS at 5 % decides until both sides hold more than 1000 values; a real shift is drift either way."""
    from runner_image import drift

    rng = np.random.default_rng(3)
    quiet = [drift.score_field(fields_of_values(rng.normal(5, 1, 150)), fields_of_values(rng.normal(5, 1, 150)))
             for _ in range(200)]
    assert {s["decided_by"] for s in quiet} == {"ks"}
    assert sum(s["wasserstein"]["drifted"] for s in quiet) > 20  # what the fixed bound alone would have said
    assert sum(s["drifted"] for s in quiet) <= 16  # about 5 % (fewer: ties within a bucket make KS cautious)
    shifted = drift.score_field(fields_of_values(rng.normal(0, 1, 150)), fields_of_values(rng.normal(5, 1, 150)))
    assert shifted["drifted"] is True and shifted["ks"]["value"] > shifted["ks"]["threshold"]
    large = drift.score_field(fields_of_values(rng.normal(5, 1, 5000)), fields_of_values(rng.normal(5, 1, 1500)))
    assert large["decided_by"] == "wasserstein" and large["drifted"] is False
# ---------------------------------------------------------------- in-process routes

def test_reading_statistics_needs_the_admin_token(iris, make_client):
    with make_client(iris) as client:
        client.post("/model/methods/classify", json=builders.IRIS_SAMPLE)
        for path in ("/model/statistics", "/model/statistics/drift", "/model/quality",
                     "/model/statistics/reference"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=auth("wrong-token-xxxxxxxxxxxxxxxx")).status_code == 401, path
            assert client.get(path, headers=auth()).status_code == 200, path
        assert client.put("/model/statistics/reference", json={"rows": [builders.IRIS_SAMPLE]}).status_code == 401


def test_statistics_summarise_every_field(iris, make_client):
    rows = draws(1, 300)
    with make_client(iris) as client:
        species = []
        for row in rows:
            response = client.post("/model/methods/classify", json=row)
            species.append(response.json()["species"])
        report = client.get("/model/statistics", headers=auth()).json()
    group = only_group(report, method="classify", generation=1, variant="live")
    assert group["requests"] == 300
    for name in FEATURES:
        field = group["inputs"][name]
        values = [row[name] for row in rows]
        assert field["count"] == 300
        assert field["mean"] == pytest.approx(np.mean(values), rel=1e-9)
        assert field["std"] == pytest.approx(np.std(values), rel=1e-9)
        assert (field["min"], field["max"]) == (min(values), max(values))
        for q in ("p5", "p50", "p95"):
            exact = float(np.quantile(values, int(q[1:]) / 100, method="lower"))
            assert field[q] == pytest.approx(exact, rel=sketch.RELATIVE_ACCURACY)
    output = group["outputs"]["species"]
    assert output["kind"] == "integer"
    assert {t["value"]: t["count"] for t in output["top"]} == {s: species.count(s) for s in set(species)}


def test_a_posted_reference_set_shows_drift_only_when_inputs_shift(iris_columns, make_client):
    reference = draws(1, 2000)
    for current, shifted in ((draws(2, 2000), False), (draws(3, 2000, {"petal_length": 1.0}), True)):
        with make_client(iris_columns) as client:
            posted = client.put("/model/statistics/reference", headers=auth(), json={"rows": reference})
            assert posted.status_code == 200, posted.text
            assert posted.json()["requests"] == 2000
            assert posted.json()["inputs"]["petal_length"]["count"] == 2000
            predict_rows(client, current)
            group = only_group(drift(client), method="classify")
        assert group["reference"]["kind"] == "posted"
        scores = group["inputs"]
        for name in FEATURES:
            moved = shifted and name == "petal_length"
            assert scores[name]["drifted"] is moved, (name, scores[name])
            assert scores[name]["psi"]["drifted"] is moved
            assert scores[name]["n_reference"] == scores[name]["n_current"] == 2000
        if shifted:
            assert scores["petal_length"]["psi"]["value"] > 0.25
            assert scores["petal_length"]["psi"]["major"] is True
            assert scores["petal_length"]["wasserstein"]["value"] > 0.4  # moved by about 1 / 1.76 std
        else:
            assert max(scores[n]["psi"]["value"] for n in FEATURES) < 0.05
            assert max(scores[n]["wasserstein"]["value"] for n in FEATURES) < 0.08
        assert group["dataset_drift"]["drifted"] is False  # one of four inputs moved: under the 0.5 share
        assert group["outputs"]["species"]["note"].startswith("the reference has no values")


def test_categorical_drift(tmp_path, make_client):
    bundle = builders.text_bundle(tmp_path / "text")
    rng = random.Random(11)
    reference = [{"text": rng.choices(["cat", "dog", "fish"], [0.6, 0.3, 0.1])[0]} for _ in range(3000)]
    same = rng.choices(["cat", "dog", "fish"], [0.6, 0.3, 0.1], k=400)
    moved = rng.choices(["cat", "dog", "fish", "bird"], [0.3, 0.3, 0.1, 0.3], k=400)
    results = {}
    for name, words in (("same", same), ("moved", moved)):
        with make_client(bundle) as client:
            assert client.put("/model/statistics/reference", headers=auth(), json=reference).status_code == 200
            for word in words:
                assert client.post("/model/methods/measure", json={"text": word}).status_code == 200
            results[name] = only_group(drift(client), method="measure")["inputs"]["text"]
    same, moved = results["same"], results["moved"]
    assert same["compared_as"] == moved["compared_as"] == "categories"
    assert same["jensen_shannon"]["value"] < 0.1 and same["jensen_shannon"]["drifted"] is False
    assert same["chi_squared"]["p_value"] > 0.01
    assert moved["jensen_shannon"]["value"] > 0.3 and moved["jensen_shannon"]["drifted"] is True
    assert moved["chi_squared"]["p_value"] < 1e-10 and moved["chi_squared"]["df"] == 3
    assert same["decided_by"] == "jensen_shannon"  # 3000 reference values: a distance decides
    assert moved["drifted"] is True and same["drifted"] is False


def test_drift_against_another_generation(iris_columns, make_client):
    config = {"methods": {"classify": {"call": "predict"}}, "params": {}}
    outcomes = {}
    for name, later in (("same", draws(5, 1500)), ("moved", draws(6, 1500, {"sepal_width": -0.6}))):
        with make_client(iris_columns) as client:
            predict_rows(client, draws(4, 1500))
            swapped = client.put("/model/configuration", headers=auth(), json=config)
            assert swapped.status_code == 200, swapped.text
            predict_rows(client, later)
            report = drift(client, generation=2, against="generation:1")
            outcomes[name] = only_group(report, generation=2)
            default = only_group(drift(client, generation=2), generation=2)
            assert default["reference"] is None  # its first full window has not closed
            missing = only_group(drift(client, generation=2, against="generation:9"), generation=2)
            assert missing["reference"] is None
    for name, group in outcomes.items():
        assert group["reference"]["kind"] == "generation" and group["reference"]["generation"] == 1
        assert group["reference"]["requests"] == 15
        sepal_width = group["inputs"]["sepal_width"]
        assert sepal_width["drifted"] is (name == "moved"), sepal_width
        assert group["inputs"]["petal_width"]["drifted"] is False
    assert outcomes["moved"]["outputs"]["species"]["n_current"] == 1500


def test_bad_queries_and_bad_reference_sets_are_refused(iris, iris_columns, make_client):
    with make_client(iris) as client:
        for params in ({"windows": "0"}, {"windows": "999"}, {"against": "yesterday"}, {"generation": "x"},
                       {"against": "generation:0"}):
            response = client.get("/model/statistics/drift", headers=auth(), params=params)
            assert response.status_code == 400, params
            assert next(iter(params)) in response.json()["error"]["message"]
        bad_rows = [builders.IRIS_SAMPLE, builders.IRIS_SAMPLE, {**builders.IRIS_SAMPLE, "sepal_length": "long"}]
        response = client.put("/model/statistics/reference", headers=auth(), json={"rows": bad_rows})
        assert response.status_code == 400
        assert "rows[2].sepal_length" in response.json()["error"]["message"]
        for body, expected in (({"rows": []}, "non-empty"), ({"rows": [1], "messages": [1]}, "exactly one"),
                               ({"rows": [builders.IRIS_SAMPLE], "extra": 1}, "extra"),
                               ({"rows": [{"petal": 1}]}, "unknown field 'rows[0].petal'")):
            response = client.put("/model/statistics/reference", headers=auth(), json=body)
            assert response.status_code == 400 and expected in response.json()["error"]["message"], body
        response = client.put("/model/statistics/reference", headers=auth(),
                              json={"method": "nope", "rows": [builders.IRIS_SAMPLE]})
        assert response.status_code == 404
        assert client.delete("/model/statistics/reference", headers=auth()).status_code == 404
    with make_client(iris_columns) as client:
        response = client.put("/model/statistics/reference", headers=auth(),
                              json={"rows": [{**builders.IRIS_SAMPLE, "sepal_length": [1, 2]}]})
        assert response.status_code == 400 and "one value per column" in response.json()["error"]["message"]


def test_statistics_can_be_turned_off(iris, make_client):
    with make_client(iris, statistics=0) as client:
        response = client.post("/model/methods/classify", json=builders.IRIS_SAMPLE)
        assert response.status_code == 200
        for method, path in (("GET", "/model/statistics"), ("GET", "/model/statistics/drift"),
                             ("GET", "/model/quality")):
            response = client.request(method, path, headers=auth())
            assert response.status_code == 409 and "RUNNER_STATISTICS" in response.json()["error"]["message"]
        response = client.post("/model/feedback", json={"request_id": "abc", "truth": 1})
        assert response.status_code == 409
        state = Path(client.app.state.settings.state_dir)
    assert not (state / "stats").exists()


def test_memory_stays_bounded_whatever_values_arrive(bags, make_client):
    rng = random.Random(2)
    with make_client(bags, stats_top_k=50) as client:
        for batch in range(20):
            words = [f"word-{batch}-{i}-" + "y" * rng.randint(0, 200) for i in range(5000)]
            x = [rng.choice((-1, 1)) * 10 ** rng.uniform(-300, 300) for _ in range(5000)]
            response = client.post("/model/methods/count", json={"words": words, "x": x + ["NaN", "Infinity"]})
            assert response.status_code == 200, response.text
        stats = client.app.state.runtime.stats
        stats.flush(True)
        window = stats._window
        group = next(iter(window.groups.values()))
        assert len(group.fields["input.words"].categories.counts) <= 2 * 50
        assert len(group.fields["input.x"].histogram.counts) <= 2 * sketch.MAX_BUCKETS
        files = list(stats.worker_dir.glob("*.json"))
        report = client.get("/model/statistics", headers=auth()).json()
    assert 1 <= len(files) <= 2  # the test may cross into a second window
    assert max(f.stat().st_size for f in files) < 16_000  # 100,000 words, and numbers over 600 decades
    fields = only_group(report, method="count")["inputs"]
    assert fields["words"]["count"] == 100_000
    assert fields["words"]["other"] + sum(t["count"] for t in fields["words"]["top"]) == 100_000
    assert fields["x"]["count"] == 100_040 and fields["x"]["nan"] == 20 and fields["x"]["inf"] == 20
    assert all(len(t["value"]) <= sketch.MAX_CATEGORY_CHARS + 1 for t in fields["words"]["top"])


def test_a_reference_set_of_messages_counts_every_element(iris_columns, make_client):
    messages = [columns(draws(i, 7)) for i in range(3)]
    with make_client(iris_columns) as client:
        response = client.put("/model/statistics/reference", headers=auth(), json={"messages": messages})
        assert response.status_code == 200, response.text
        assert response.json()["requests"] == 3
        assert response.json()["inputs"]["sepal_width"]["count"] == 21
        listed = client.get("/model/statistics/reference", headers=auth()).json()["references"]
        assert [r["method"] for r in listed] == ["classify"]
        assert client.delete("/model/statistics/reference", headers=auth()).json() == {"deleted": "classify"}
        assert client.get("/model/statistics/reference", headers=auth()).json() == {"references": []}


def test_nested_repeated_and_enum_fields_are_walked():
    proto = compile_proto(b"""
        syntax = "proto3";
        enum Colour { RED = 0; GREEN = 1; }
        message Row { double x = 1; Colour colour = 2; optional int64 k = 3; }
        message In { repeated Row rows = 1; map<string, double> extra = 2; bytes blob = 3; bool flag = 4; }
        message Out { double y = 1; }
        service Model { rpc go (In) returns (Out); }
    """)
    cls = proto.method("go").input
    msg = message_from_dict(cls, {"rows": [{"x": 1.5, "colour": "GREEN", "k": 3}, {"x": -2.0}],
                                  "extra": {"a": 1.0, "b": 2.0}, "blob": "AAAA", "flag": True})
    fields, requests = fields_of([msg, msg], top_k=10)
    assert requests == 2
    assert fields["input.rows.x"].moments.n == 4
    assert fields["input.rows.colour"].categories.counts == {"GREEN": 2, "RED": 2}
    assert fields["input.rows.k"].moments.n == 2 and fields["input.rows.k"].missing == 2
    assert fields["input.extra.key"].categories.counts == {"a": 2, "b": 2}
    assert fields["input.extra.value"].moments.mean == 1.5
    assert fields["input.blob"].moments.mean == 3  # bytes: their length
    assert fields["input.flag"].categories.counts == {"true": 2}


# ---------------------------------------------------------------- two worker processes

def wait_for(condition, timeout: float = 20.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def test_statistics_merged_across_workers_equal_what_was_sent(iris, start_runner, tmp_path):
    runner = start_runner(iris, workers=2, state_dir=tmp_path / "state")
    rows = draws(8, 400)
    answers = [post_on_a_new_connection(runner, "/model/methods/classify", row)["species"] for row in rows]

    def complete():
        report = httpx.get(f"{runner.url}/model/statistics", headers=auth(), timeout=30).json()
        groups = report["groups"]
        return report if groups and groups[0]["requests"] == len(rows) else None

    report = wait_for(complete)
    assert report, "the workers' windows did not add up to what was sent"
    workers = [d for d in (tmp_path / "state" / "stats" / "windows").iterdir() if any(d.glob("*.json"))]
    assert len(workers) == 2, "both workers should have answered (new connections are shared between them)"
    group = only_group(report, method="classify")
    cls = compile_proto((iris / "model.proto").read_bytes()).method("classify").input
    single, _ = fields_of([message_from_dict(cls, row) for row in rows], top_k=50)  # one process, same values
    for name in FEATURES:
        merged, alone = group["inputs"][name], single[f"input.{name}"].summary()
        assert merged["count"] == alone["count"] == 400
        for key in ("min", "max", "p5", "p50", "p95"):
            assert merged[key] == alone[key], (name, key)
        assert merged["mean"] == pytest.approx(alone["mean"], rel=1e-12)
        assert merged["std"] == pytest.approx(alone["std"], rel=1e-9)
    top = {t["value"]: t["count"] for t in group["outputs"]["species"]["top"]}
    assert top == {s: answers.count(s) for s in set(answers)}


def test_default_reference_is_the_first_full_window(iris_columns, start_runner):
    """One-second windows: 3 s of traffic make at least one full window, the reference; then 3 s of new
    draws from the same distribution, then 3 s shifted. The current windows (the last two) hold only the
    traffic of the last phase."""
    env = {"RUNNER_STATS_WINDOW_SECONDS": "1", "RUNNER_STATS_FLUSH_INTERVAL": "0.2"}
    runner = start_runner(iris_columns, workers=2, env=env)
    send_for(runner, seconds=3.0, seed=20, shift=0.0)
    results = {}
    for name, seed, shift in (("same", 21, 0.0), ("moved", 22, 1.2)):
        send_for(runner, seconds=3.0, seed=seed, shift=shift)
        response = httpx.get(f"{runner.url}/model/statistics/drift", headers=auth(), timeout=30)
        assert response.status_code == 200, response.text
        results[name] = only_group(response.json(), method="classify")
    assert results["same"]["reference"] == results["moved"]["reference"] or \
        results["same"]["reference"]["provisional"]  # pinned once settled, and then it stays
    for name, group in results.items():
        assert group["reference"]["kind"] == "first-window", group["reference"]
        petal_length = group["inputs"]["petal_length"]
        assert petal_length["drifted"] is (name == "moved"), petal_length
        assert group["inputs"]["sepal_width"]["drifted"] is False
    assert results["moved"]["inputs"]["petal_length"]["psi"]["major"] is True


def post_on_a_new_connection(runner, path: str, body) -> dict:
    """A POST on its own connection (the workers share the listening socket: both answer some)."""
    connection = http.client.HTTPConnection("127.0.0.1", runner.port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        assert response.status == 200, payload
        return json.loads(payload)
    finally:
        connection.close()


def send_for(runner, seconds: float, seed: int, shift: float) -> None:
    """Requests of 100 rows without pause for `seconds` (so whole windows fill with them)."""
    deadline = time.monotonic() + seconds
    batch = seed * 1000
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            batch += 1
            rows = draws(batch, 100, {"petal_length": shift})
            response = client.post(f"{runner.url}/model/methods/classify", json=columns(rows))
            assert response.status_code == 200, response.text


def test_a_stopping_worker_writes_what_it_recorded_since_its_last_write(iris, tmp_path):
    rows = draws(3, 20)
    # An hour between writes: only the write at stop can put these 20 answers in the state directory.
    with runner_client(iris, tmp_path / "state", stats_flush_interval=3600.0) as client:
        for row in rows:
            assert client.post("/model/methods/classify", json=row).status_code == 200
    with runner_client(iris, tmp_path / "state") as client:  # a new runtime, generation 2, same state directory
        report = client.get("/model/statistics", headers=auth()).json()
    assert only_group(report, method="classify", generation=1, variant="live")["requests"] == 20

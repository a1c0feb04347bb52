"""A revision's resource needs, measured at onboarding in the real sandboxed smoke test: a model that holds
more memory measures more (the kernel's count for the sandbox's cgroup, which the model cannot change), one
that is slower measures slower; the figures are on the revision, in its API, on its pages and in the step's
log; what the model's own process wrote is kept only as sane numbers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from acumos_portal import sandbox
from marketplace.models import Revision
from onboarding import smoke
from onboarding.choices import JobStatus
from runner_image.pack import pack_bundle

from ..bundles import parts_of
from .test_api import JOBS, uploads

pytestmark = pytest.mark.django_db
MIB = 1 << 20


def holding_bundle(out: Path, name: str, hold_mib: int = 0, sleep_ms: float = 0.0) -> Path:
    """A model that holds `hold_mib` MiB while it answers (touched, so the pages are really there) and takes
    `sleep_ms` to answer."""

    def predict(x: float):
        held = bytearray(hold_mib * MIB)
        for offset in range(0, len(held), 4096):
            held[offset] = 1
        time.sleep(sleep_ms / 1000)
        return {"y": x + len(held) * 0}

    return pack_bundle(model=predict, flavour="python", name=name, method="predict", inputs="x:double",
                       outputs="y:double", out=out, sample={"x": 1.0})


def onboard(user, client_for, bundle: Path, inline_jobs) -> tuple[dict, Revision]:
    with inline_jobs():
        created = client_for(user).post(JOBS, uploads(parts_of(bundle)))
    assert created.status_code == 201, created.content
    job = client_for(user).get(created.json()["url"]).json()
    assert job["status"] == JobStatus.SUCCEEDED, job
    return job, Revision.objects.get(pk=job["revision"])


def test_a_model_that_holds_more_memory_and_answers_slower_measures_so(owner, client_for, inline_jobs, tmp_path):
    _, small = onboard(owner, client_for, holding_bundle(tmp_path / "small", "Small"), inline_jobs)
    job, large = onboard(owner, client_for, holding_bundle(tmp_path / "large", "Large", hold_mib=160, sleep_ms=20),
                         inline_jobs)

    if small.resources["peak_memory_bytes"] is None:
        pytest.fail("the kernel kept no peak memory for the sandbox's cgroup (memory.peak or "
                    "memory.max_usage_in_bytes): this machine's cgroups cannot measure it")
    grown = large.resources["peak_memory_bytes"] - small.resources["peak_memory_bytes"]
    assert 150 * MIB <= grown <= 200 * MIB, grown / MIB  # what it held, and not much else
    slow, quick = large.resources["methods"]["predict"], small.resources["methods"]["predict"]
    assert slow["single_ms"] >= 20 > quick["single_ms"]
    assert slow["single_max_ms"] >= slow["single_ms"]
    assert large.resources["package_bytes"] == (tmp_path / "large" / "modelpackage.zip").stat().st_size
    assert large.resources["load_ms"] > 0 and large.resources["measured_at"]

    smoke_step = next(s for s in job["steps"] if s["name"] == "smoke_test")
    assert "measured: peak memory" in smoke_step["log"] and "predict: " in smoke_step["log"]
    detail = client_for(owner).get(f"/api/v1/revisions/{large.pk}").json()
    assert detail["resources"]["peak_memory_bytes"] == large.resources["peak_memory_bytes"]
    page = client_for(owner).get(f"/models/{large.solution_id}/").content.decode()
    assert "Resources of" in page and "Measured in the sandbox at onboarding" in page


def test_what_the_models_own_report_says_is_kept_only_as_sane_numbers():
    report = {"ok": True, "load_ms": "fast", "latency": {
        "predict": {"single_ms": -5, "single_max_ms": float("inf"), "batch_ms": 1.5, "batch_rows": True},
        "classify": {"single_ms": 0.25, "single_max_ms": 0.5, "batch_ms": 2.0, "batch_rows": 32},
        "x" * 500: {"single_ms": 1.0},
        "odd": "not figures"}}
    outcome = sandbox.Outcome(status=0, out_of_memory=False, collected=smoke.Left(report, ""),
                              peak_memory_bytes=123 * MIB)

    measured = smoke.measured(outcome, 1000)

    assert measured == {"peak_memory_bytes": 123 * MIB, "package_bytes": 1000, "load_ms": None, "methods": {
        "predict": {"batch_ms": 1.5},  # a negative time, an infinite one and a bool for rows are dropped
        "classify": {"single_ms": 0.25, "single_max_ms": 0.5, "batch_ms": 2.0, "batch_rows": 32}}}
    assert "classify: 0.25 ms a call (median; slowest 0.5 ms); 32 rows in one call 2 ms" in smoke.describe(measured)

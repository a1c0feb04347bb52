"""Smoke test: load the model and answer its samples, in the sandbox, with no network.

The portal never loads a user's model itself. `python -m runner_image check` does, inside
acumos_portal.sandbox: it unpacks the bundle, loads the model the way a runner does and answers each
sample through the same code a hot swap uses to accept a candidate, then writes a JSON report. The
sandbox has a time bound, memory, task and CPU-time limits, and leaves nothing behind.

What comes back is the model's to write (a hostile model can write anything in its own report or
output), so it is read with a size cap and shown as text only.

The smoke test is also where a revision's resource needs are measured (`measured`), not taken from what its
uploader says: the peak memory of the sandbox, as the kernel counted it for its cgroup (outside the model's
reach); the package's size (the portal's own count); and the load time and latency that the check process
timed around the model's calls (`runner_image check`). Those two come from inside the sandbox, where the
model's code runs in the same process: they are kept only as finite numbers in a sane range, and a model
that lies about its speed is found out by its deployment's monitoring."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from acumos_portal import sandbox

REPORT = "report.json"
BUNDLE = "/model"
PACKAGE = "modelpackage.zip"  # the bundle's model package (marketplace.choices.ARTIFACT_FILE_NAMES)
MAX_REPORT_BYTES = 64 << 10
MAX_ANSWER_CHARS = 6000  # per answer in the log its uploader reads
LOG_TAIL_CHARS = 3000


class SmokeFailed(Exception):
    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class Checked:
    """A passed smoke test: the log its uploader reads, and the resources measured (see `measured`)."""

    log: str
    resources: dict


@dataclass(frozen=True)
class Left:
    """What the sandbox left: its report (None when it wrote none that parses) and its output."""

    report: dict | None
    output: str


def workspace() -> Path:
    """A directory for one smoke test (its bundle, then the sandbox's own files); a sweep removes
    it if the process that made it dies."""
    return sandbox.workspace(sandbox.workspaces_dir(), "smoke")


def run(directory: Path, bundle: Path, timeout: float) -> Checked:
    """Check the bundle in `bundle` in a sandbox made in `directory`: its log and measured resources, or
    SmokeFailed."""
    try:
        sandbox.check_available()
    except sandbox.Unavailable as exc:
        raise SmokeFailed(f"the smoke test could not run: {exc}") from exc
    limits = sandbox.configured_limits(cpu_seconds=settings.ACUMOS_SANDBOX_CPU_SECONDS)
    spec = sandbox.Spec(name=directory.name, directory=directory, read_only={BUNDLE: bundle}, limits=limits,
                        command=[sandbox.python(), "-m", "runner_image", "check", BUNDLE,
                                 "--state-dir", f"{sandbox.WORK}/state", "--report", f"{sandbox.WORK}/{REPORT}"])
    package = bundle / PACKAGE
    package_bytes = package.stat().st_size if package.exists() else None  # the sandbox's end removes it
    outcome = sandbox.run(spec, records=sandbox.records_dir(), timeout=timeout, collect=_collect)
    log = _judge(outcome, timeout, limits)
    return Checked(log, measured(outcome, package_bytes))


def _collect(directory: Path) -> Left:
    return Left(_report(directory / "work"), _tail(directory / sandbox.OUTPUT))


def _report(work: Path) -> dict | None:
    """The model wrote its directory: the report may be a link to a file of the host's or a FIFO
    that blocks a reader for ever. Only a regular file, opened without following links, is read."""
    try:
        folder = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        handle = os.open(REPORT, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    with os.fdopen(handle, "rb") as report:
        if not stat.S_ISREG(os.fstat(report.fileno()).st_mode):
            return None
        try:
            value = json.loads(report.read(MAX_REPORT_BYTES + 1)[:MAX_REPORT_BYTES])
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - LOG_TAIL_CHARS))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _judge(outcome: sandbox.Outcome, timeout: float, limits: sandbox.Limits) -> str:
    left: Left = outcome.collected
    if outcome.status is None:
        raise SmokeFailed(f"the smoke test did not finish within {timeout:g} s (ACUMOS_SMOKE_TIMEOUT): the model "
                          "took too long to load or to answer its samples, and was stopped", left.output)
    if outcome.out_of_memory:
        raise SmokeFailed(f"the model was stopped: it used more than its memory limit of "
                          f"{limits.memory_bytes >> 20} MiB (ACUMOS_SANDBOX_MEMORY_MB)", left.output)
    if outcome.status < 0 or left.report is None:
        raise SmokeFailed(f"the model's process ended without a result ({_ending(outcome.status, limits)}):\n"
                          f"{left.output[-800:]}", left.output)
    if not left.report.get("ok"):
        raise SmokeFailed(f"the model failed its smoke test: {_text(left.report.get('error'))}", left.output)
    return _summary(left.report)


MAX_MS = 3_600_000.0  # an hour: a timing beyond it (or negative, or not a number) is not kept
LATENCY_KEYS = ("single_ms", "single_max_ms", "batch_ms")


def measured(outcome: sandbox.Outcome, package_bytes: int | None) -> dict:
    """The resources a passed smoke test measured (see the module's docstring for who measured what)."""
    report: dict = outcome.collected.report or {}
    resources = {"peak_memory_bytes": outcome.peak_memory_bytes, "package_bytes": package_bytes,
                 "load_ms": _ms(report.get("load_ms")), "methods": {}}
    latency = report.get("latency") if isinstance(report.get("latency"), dict) else {}
    for method, figures in list(latency.items())[:64]:
        if isinstance(method, str) and isinstance(figures, dict) and len(method) <= 100:
            kept = {key: _ms(figures.get(key)) for key in LATENCY_KEYS if _ms(figures.get(key)) is not None}
            rows = figures.get("batch_rows")
            if "batch_ms" in kept and type(rows) is int and 0 < rows <= 10_000:  # not a bool, which is an int
                kept["batch_rows"] = rows
            resources["methods"][method] = kept
    return resources


def describe(resources: dict) -> str:
    """The measured resources, in a line or two of the step's log."""
    said = []
    if resources.get("peak_memory_bytes") is not None:
        said.append(f"peak memory {resources['peak_memory_bytes'] / (1 << 20):.1f} MiB")
    if resources.get("package_bytes") is not None:
        said.append(f"package {resources['package_bytes'] / (1 << 20):.2f} MiB")
    if resources.get("load_ms") is not None:
        said.append(f"loaded in {resources['load_ms']:g} ms")
    lines = ["measured: " + ", ".join(said)] if said else []
    for method, figures in resources.get("methods", {}).items():
        if "single_ms" in figures:
            batch = (f"; {figures['batch_rows']} rows in one call {figures['batch_ms']:g} ms"
                     if "batch_rows" in figures else "")
            lines.append(f"{method}: {figures['single_ms']:g} ms a call (median; slowest "
                         f"{figures.get('single_max_ms', figures['single_ms']):g} ms){batch}")
    return "".join(line + "\n" for line in lines)


def _ms(value) -> float | None:
    """A timing from the report, if it is a number of milliseconds in a sane range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), 3) if 0 <= value <= MAX_MS else None


def _ending(status: int, limits: sandbox.Limits) -> str:
    signals = {-9: "killed", -24: f"it used more than {limits.cpu_seconds} s of CPU time (ACUMOS_SANDBOX_CPU_SECONDS)",
               -25: f"it wrote a file larger than {limits.file_bytes >> 20} MiB"}
    return signals.get(status, f"exit status {status}")


def _summary(report: dict) -> str:
    samples = report.get("samples") if isinstance(report.get("samples"), dict) else {}
    head = f"the model loaded in the sandbox in {_text(report.get('load_ms'))} ms"
    if not samples:
        return head + "; the package has no sample to call it with\n"
    lines = [f"{_text(method)}({_json(entry.get('request'))}) -> {_json(entry.get('answer'))}"
             f" ({_text(entry.get('ms'))} ms)" for method, entry in samples.items() if isinstance(entry, dict)]
    return head + " and answered its samples:\n" + "\n".join(lines) + "\n"


def _json(value) -> str:
    return _text(json.dumps(value, separators=(",", ":")))


def _text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + f"... ({len(text)} characters)"


def discard(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)

"""Shared plumbing for the benchmarks: the iris example, server processes, wrk runs, results.

Every process started here runs in its own session (its own process group), so that stopping it
stops its workers too and a Ctrl-C in the terminal reaches only the benchmark, which then cleans up.
All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
OUT_DIR = REPO / "bench" / "out"
HOST = "127.0.0.1"
EXAMPLE_SCRIPT = REPO / "examples" / "iris" / "make_bundle.py"
PREDICT_PATH = "/model/methods/classify"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SAMPLE_ROW = (5.1, 3.5, 1.4, 0.2)
SAMPLE_BODY = json.dumps(dict(zip(FEATURES, SAMPLE_ROW, strict=True)), separators=(",", ":"))

# Variables that make libraries phone home or route local traffic through a proxy.
_OFFLINE_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "NO_PROXY": "*", "no_proxy": "*"}
QUIET_CPU_PCT = 15.0  # more CPU than this used by other work before a run makes its figures suspect
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# ---------------------------------------------------------------- setup

def offline_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the venv first on PATH, no telemetry, no proxies."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.update(_OFFLINE_ENV)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def go_offline() -> None:
    """Apply the same rules to this process (before mlflow is imported)."""
    for name in _PROXY_VARS:
        os.environ.pop(name, None)
    os.environ.update(_OFFLINE_ENV)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that `finally` blocks clean up as they do on Ctrl-C."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def run_main(run, args) -> int:
    """Entry point shared by the benchmarks: Ctrl-C or SIGTERM stop everything they started."""
    stop_on_sigterm()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, scratch files removed", file=sys.stderr)
        return 130


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold back Ctrl-C/SIGTERM while cleaning up, so a second Ctrl-C cannot leave servers behind."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def free_port() -> int:
    """A port the kernel just handed out; it is free unless something grabs it in between."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def scratch_dir(stack: contextlib.ExitStack, prefix: str) -> Path:
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


# ---------------------------------------------------------------- peers in venvs of their own

# Peer servers (MLServer, BentoML...) never go into the project's .venv: their pins fight ours.
PEER_CACHE = Path(os.environ.get("ACUMOS_BENCH_CACHE", Path.home() / ".cache" / "acumos-bench"))


def peer_venv(name: str, version: str, requirements: list[str], *, timeout: float = 1800.0) -> Path:
    """The bin/ of a venv holding one peer at pinned versions: PEER_CACHE/<name>-<version>/.

    Made on first use (`python -m venv` with the interpreter the project's venv is built on, so the same
    Python reads the same pickles, then `pip install` of `requirements`), reused afterwards while its
    stamp lists the same requirements. A lock keeps two benchmarks from building it at once; a venv
    left half-made (no stamp) is removed and built again."""
    home = PEER_CACHE / f"{name}-{version}"
    stamp = home / ".installed"
    wanted = "\n".join(requirements) + "\n"
    PEER_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PEER_CACHE / f"{name}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted:
            return home / "bin"
        shutil.rmtree(home, ignore_errors=True)
        print(f"  making {home} (first use; pip install {' '.join(requirements)})", flush=True)
        base_python = getattr(sys, "_base_executable", None) or shutil.which("python3")
        _run_install([base_python, "-m", "venv", str(home)], timeout)
        _run_install([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                      *requirements], timeout)
        stamp.write_text(wanted)
    return home / "bin"


def peer_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """offline_env for a peer: its own venv's bin/ first on PATH (servers that start helpers by name, such
    as uvicorn, must find the peer's, never the project's) and the project's venv off it."""
    env = offline_env(**extra)
    rest = [p for p in env["PATH"].split(os.pathsep) if Path(p) != VENV_BIN]
    env["PATH"] = os.pathsep.join([str(bin_dir), *rest])
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env.pop("PYTHONPATH", None)
    return env


def _run_install(cmd: list[str], timeout: float) -> None:
    # The caller's own environment: pip may need the proxy settings offline_env drops.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n{output}")


# ---------------------------------------------------------------- the iris example

def load_example():
    """examples/iris/make_bundle.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("iris_make_bundle", EXAMPLE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pack_estimator(example, estimator, out: Path) -> Path:
    """Pack an already fitted estimator with the example's own make_bundle.

    make_bundle trains its own model; handing it ours through its `train` hook keeps one definition of
    the bundle (signature, sample, metadata) and guarantees the bundle holds exactly this estimator.
    """
    original = example.train
    example.train = lambda *args, **kwargs: estimator
    try:
        return example.make_bundle(out)
    finally:
        example.train = original


# ---------------------------------------------------------------- processes

@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def start_process(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=cwd or REPO)


def stop_process(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` seconds."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # The leader may be gone while its workers linger: always sweep the group.
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # start_new_session made pid the group id


@contextlib.contextmanager
def serving(name: str, cmd: list[str], *, env: dict[str, str], port: int, log: Path,
            keep_as: str, cwd: Path | None = None) -> Iterator[Server]:
    """A server for the duration of a `with`; afterwards its log is copied to bench/out/logs/<keep_as>.log,
    whether the benchmark succeeded or not (the scratch dir holding the original is removed)."""
    process = start_process(cmd, env, log, cwd)
    try:
        yield Server(name, port, process, log)
    finally:
        with uninterrupted():
            stop_process(process)
            keep_log(log, keep_as)


def runner_command(bundle: Path, port: int, workers: int, state_dir: Path) -> list[str]:
    return [str(PYTHON), "-m", "runner_image", "serve", str(bundle), "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--state-dir", str(state_dir)]


def http_client(timeout: float = 10.0) -> httpx.Client:
    # trust_env=False: no proxy from the environment can send 127.0.0.1 traffic elsewhere.
    return httpx.Client(trust_env=False, timeout=timeout)


def wait_until(ready: Callable[[], bool], server: Server, what: str, timeout: float = 120.0) -> float:
    """Poll `ready` until it holds; fail early if the server died. Returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode} before {what}; "
                               f"log:\n{tail(server.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} was not {what} within {timeout:.0f} s; log:\n{tail(server.log)}")


ReadyCheck = Callable[[httpx.Client, Server], Callable[[], bool]]


def answers_200(path: str) -> ReadyCheck:
    """Ready when GET `path` answers 200 (a peer's health or model-ready endpoint)."""
    return lambda client, server: lambda: client.get(f"{server.base_url}{path}").status_code == 200


@contextlib.contextmanager
def ready_server(name: str, cmd: list[str], *, env: dict[str, str], port: int, log: Path, keep_as: str,
                 ready: ReadyCheck, cwd: Path | None = None,
                 timeout: float = 180.0) -> Iterator[tuple[Server, httpx.Client, float]]:
    """Any command line as a server (see `serving`), held until `ready` holds: (server, a client, seconds to
    ready). The server is stopped, and its log kept, when the `with` ends."""
    with serving(name, cmd, env=env, port=port, log=log, keep_as=keep_as, cwd=cwd) as server, \
            http_client() as client:
        startup = wait_until(ready(client, server), server, "ready", timeout=timeout)
        yield server, client, startup


def runner_ready(client: httpx.Client, server: Server, workers: int) -> Callable[[], bool]:
    def ready() -> bool:
        if client.get(f"{server.base_url}/v2/health/ready").status_code != 200:
            return False
        model = client.get(f"{server.base_url}/model")
        return model.status_code == 200 and model.json().get("workers", 0) >= workers

    return ready


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


_NOTABLE = re.compile(r"\b(ERROR|CRITICAL|Traceback|Exception|WARNING|\w*Warning:)")


def notable_log_lines(log: Path, limit: int = 40) -> list[str]:
    """Warnings, errors and tracebacks from a server log, each distinct line once with its count:
    what a reader must see rather than find later in a file."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    counts = Counter(line.strip() for line in lines if _NOTABLE.search(line))
    return [line if n == 1 else f"{line}  (x{n})" for line, n in list(counts.items())[:limit]]


def kept_log(name: str) -> Path:
    return OUT_DIR / "logs" / f"{name}.log"


def keep_log(log: Path, name: str) -> Path:
    target = kept_log(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(log.read_bytes() if log.exists() else b"")
    return target


# ---------------------------------------------------------------- wrk

@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors}


def write_post_script(path: Path, body: str) -> Path:
    """A wrk Lua script that POSTs one JSON body (no response hook: it would slow wrk down)."""
    lua_body = body.replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(f"wrk.method = \"POST\"\nwrk.body = '{lua_body}'\n"
                    "wrk.headers[\"Content-Type\"] = \"application/json\"\n")
    return path


def wrk_command(url: str, script: Path, seconds: float, threads: int = 2, connections: int = 16) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", str(script), url]


def run_wrk(url: str, script: Path, seconds: float) -> WrkResult:
    completed = subprocess.run(wrk_command(url, script, seconds), capture_output=True, text=True,
                               timeout=seconds + 60, start_new_session=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}")
    return parse_wrk(completed.stdout)


@contextlib.contextmanager
def wrk_in_background(url: str, script: Path, max_seconds: float, out: Path) -> Iterator[subprocess.Popen]:
    """wrk running for at most `max_seconds`; the caller stops it early with stop_wrk."""
    with open(out, "wb") as handle:
        process = subprocess.Popen(wrk_command(url, script, max_seconds), stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        with uninterrupted():
            stop_process(process, grace=5)


def stop_wrk(process: subprocess.Popen, out: Path, timeout: float = 15.0) -> WrkResult:
    """SIGINT makes wrk stop and print its figures for the time it ran."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=timeout)
    return parse_wrk(out.read_text())


_SOCKET_ERRORS = ("connect", "read", "write", "timeout")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def _count(text: str) -> float:
    """wrk's counts may carry k/M suffixes."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1)
    return float(text.rstrip("kMG")) * scale


def parse_wrk(output: str) -> WrkResult:
    percentiles = {int(p): _ms(v, u) for p, v, u in re.findall(rf"^\s+(\d+)%\s+{_DURATION}", output, re.M)}
    totals = re.search(rf"(\d+) requests in {_DURATION}", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+[kMG]?)", output)
    latency_max = re.search(rf"Latency\s+{_DURATION}\s+{_DURATION}\s+{_DURATION}", output)
    if not (totals and rps and {50, 99} <= set(percentiles)):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(totals.group(1)), seconds=_ms(totals.group(2), totals.group(3)) / 1000,
        rps=_count(rps.group(1)), p50_ms=percentiles[50], p75_ms=percentiles.get(75, float("nan")),
        p90_ms=percentiles.get(90, float("nan")), p99_ms=percentiles[99],
        max_ms=_ms(latency_max.group(5), latency_max.group(6)) if latency_max else float("nan"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(_SOCKET_ERRORS, map(int, sockets.groups()) if sockets else (0, 0, 0, 0), strict=True)),
    )


# ---------------------------------------------------------------- results

def write_results(name: str, results: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    return path


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def background_cpu(seconds: float = 1.0) -> float:
    """Percent of all cores busy while none of our processes run: other work skews every figure.

    Returns NaN where /proc/stat does not exist."""
    try:
        busy_before, total_before = _cpu_times()
        time.sleep(seconds)
        busy_after, total_after = _cpu_times()
    except OSError:
        return float("nan")
    return 100.0 * (busy_after - busy_before) / max(1, total_after - total_before)


def check_quiet(label: str) -> float:
    busy = background_cpu()
    if busy > QUIET_CPU_PCT:
        print(f"  WARNING: the machine is {busy:.0f}% busy with other work before {label}; figures will be low",
              flush=True)
    return busy


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join
    out = [line(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line("-" * w for w in widths)]
    out += [line(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- the private Docker engine

IMAGES_ENV = REPO / "build" / "images.env"


def ensure_images() -> dict[str, str]:
    """scripts/ensure-images.sh (cached), then what it wrote to build/images.env."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "ensure-images.sh")], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ensure-images.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"  {done.stdout.strip().splitlines()[-1]}", flush=True)
    values = {}
    for line in IMAGES_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    for key in ("ACUMOS_TEST_DOCKER_HOST", "ACUMOS_TEST_REGISTRY", "ACUMOS_TEST_IMAGE_BASE", "ACUMOS_TEST_WHEELHOUSE"):
        if not values.get(key):
            raise RuntimeError(f"{IMAGES_ENV} has no {key}")
    return values


def engine_session(stack: contextlib.ExitStack, prefix: str, timeout: float):
    """What a bench on the private Docker engine starts with: no network, the portal importable,
    the engine, registry and base image ready (ensure_images), a scratch directory and a docker client
    closed with `stack`. Returns (scratch, images env, client)."""
    go_offline()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the portal's packages (run as a script, only bench/ is on the path)
    print("== setting up ==", flush=True)
    env = ensure_images()
    import docker

    scratch = scratch_dir(stack, prefix)
    client = docker.DockerClient(base_url=env["ACUMOS_TEST_DOCKER_HOST"], timeout=timeout)
    stack.callback(client.close)
    return scratch, env, client


# ---------------------------------------------------------------- database time

class SqlTimer:
    """Adds up the time of every statement (Django's execute_wrapper: a function call per query)."""

    def __init__(self):
        self.total_ms = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            self.total_ms += (time.perf_counter_ns() - started) / 1e6

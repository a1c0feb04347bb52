"""Onboarding speed and the web process's memory, through the Acumos-compatible API.

    .venv/bin/python bench/onboarding.py        (or: make bench-onboarding)

Starts the portal as `make run` does (SQLite, local files, jobs on background threads in the web
process), then:
1. uploads the example iris bundle with its model package padded to 1 MB and to 100 MB
   (incompressible bytes) and times upload (until 201) and upload-to-ready (until the job
   succeeds: every step, smoke test included);
2. uploads a 500 MB package and reads the web process's peak resident memory (VmHWM) before,
   right after the upload is accepted, and after the job finished. Target: < +100 MB.
The client streams its multipart body from disk, so it never holds a package in memory either.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import harness

PARTS = (("model", "modelpackage.zip", "application/zip"), ("metadata", "metadata.json", "application/json"),
         ("schema", "model.proto", "text/plain"))
MEMORY_TARGET_MB = 100
CHUNK = 1 << 20


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,100", help="package sizes in MB to time (comma separated)")
    parser.add_argument("--memory-mb", type=int, default=500, help="package size for the memory check (0: skip)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a job")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- bundles

def padded_bundle(example: Path, out: Path, size_mb: int, name: str) -> Path:
    """The example bundle under another name, its package grown to `size_mb` with random bytes."""
    out.mkdir(parents=True)
    shutil.copy(example / "model.proto", out / "model.proto")
    metadata = json.loads((example / "metadata.json").read_text())
    metadata["name"] = name
    metadata.pop("modelVersion", None)
    (out / "metadata.json").write_text(json.dumps(metadata))
    shutil.copy(example / "modelpackage.zip", out / "modelpackage.zip")
    missing = size_mb * CHUNK - (out / "modelpackage.zip").stat().st_size
    with zipfile.ZipFile(out / "modelpackage.zip", "a", zipfile.ZIP_STORED) as archive, \
            archive.open("padding.bin", "w", force_zip64=True) as padding:
        while missing > 0:
            padding.write(os.urandom(min(CHUNK, missing)))
            missing -= CHUNK
    return out


# ---------------------------------------------------------------- the portal

def portal_env(data_dir: Path) -> dict[str, str]:
    env = harness.offline_env(ACUMOS_DATA_DIR=str(data_dir), DJANGO_SECRET_KEY="bench-" + uuid.uuid4().hex)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "ACUMOS_STORAGE"):
        env.pop(name, None)
    return env


def prepare_portal(env: dict[str, str]) -> str:
    """Migrate, and make a user with an API token; returns `<login>:<token>` (the Acumos header)."""
    manage = [str(harness.PYTHON), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=harness.REPO, check=True)
    script = ("from acumos_portal.accounts.models import User; from acumos_portal.accounts import services;"
              "u = User.objects.create_user('bench', password='bench-password-1');"
              "print(services.token_create(user=u, name='bench')[1])")
    out = subprocess.run([*manage, "shell", "-c", script], env=env, cwd=harness.REPO, check=True,
                         capture_output=True, text=True).stdout
    return f"bench:{out.strip().splitlines()[-1]}"


def portal_ready(server: harness.Server):
    def ready() -> bool:
        with harness.http_client() as client:
            return client.get(f"{server.base_url}/accounts/login/").status_code == 200

    return ready


# ---------------------------------------------------------------- streaming upload

def multipart_segments(bundle: Path, boundary: str) -> list[bytes | Path]:
    segments: list[bytes | Path] = []
    for part, file_name, content_type in PARTS:
        segments.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; "
                         f"filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n").encode())
        segments.append(bundle / file_name)
        segments.append(b"\r\n")
    segments.append(f"--{boundary}--\r\n".encode())
    return segments


def upload(port: int, credential: str, bundle: Path) -> tuple[float, dict]:
    boundary = uuid.uuid4().hex
    segments = multipart_segments(bundle, boundary)
    length = sum(s.stat().st_size if isinstance(s, Path) else len(s) for s in segments)
    started = time.monotonic()
    connection = http.client.HTTPConnection(harness.HOST, port, timeout=600)
    try:
        connection.putrequest("POST", "/onboarding-app/v2/models")
        for header, value in (("Content-Type", f"multipart/form-data; boundary={boundary}"),
                              ("Content-Length", str(length)), ("Authorization", credential)):
            connection.putheader(header, value)
        connection.endheaders()
        for segment in segments:
            _send(connection, segment)
        response = connection.getresponse()
        body = json.loads(response.read() or b"{}")
    finally:
        connection.close()
    if response.status != 201:
        raise RuntimeError(f"upload refused: {response.status} {body}")
    return time.monotonic() - started, body


def _send(connection: http.client.HTTPConnection, segment: bytes | Path) -> None:
    if isinstance(segment, bytes):
        connection.send(segment)
        return
    with open(segment, "rb") as handle:
        while chunk := handle.read(CHUNK):
            connection.send(chunk)


def wait_for_job(server: harness.Server, credential: str, task_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    with harness.http_client() as client:
        while time.monotonic() < deadline:
            job = client.get(f"{server.base_url}/api/v1/onboarding/jobs/{task_id}",
                             headers={"Authorization": credential}).json()
            if job.get("status") in ("succeeded", "failed"):
                return job
            if server.process.poll() is not None:
                raise RuntimeError(f"the portal exited; log:\n{harness.tail(server.log)}")
            time.sleep(0.2)
    raise RuntimeError(f"job {task_id} did not finish within {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


# ---------------------------------------------------------------- the runs

def timed_onboarding(server, credential, bundle: Path, timeout: float) -> dict:
    size_mb = sum(f.stat().st_size for f in bundle.iterdir()) / CHUNK
    started = time.monotonic()
    upload_s, answer = upload(server.port, credential, bundle)
    job = wait_for_job(server, credential, answer["taskId"], timeout)
    total_s = time.monotonic() - started
    steps = {s["name"]: s["status"] for s in job["steps"]}
    return {"size_mb": round(size_mb, 1), "upload_s": round(upload_s, 2), "ready_s": round(total_s, 2),
            "status": job["status"], "steps": steps}


def memory_check(server, credential, bundle: Path, timeout: float) -> dict:
    before = peak_rss_mb(server.process.pid)
    upload_s, answer = upload(server.port, credential, bundle)
    after_upload = peak_rss_mb(server.process.pid)
    job = wait_for_job(server, credential, answer["taskId"], timeout)
    after_job = peak_rss_mb(server.process.pid)
    return {"package_mb": round((bundle / "modelpackage.zip").stat().st_size / CHUNK), "upload_s": round(upload_s, 2),
            "peak_before_mb": round(before, 1), "peak_after_upload_mb": round(after_upload, 1),
            "peak_after_job_mb": round(after_job, 1), "growth_upload_mb": round(after_upload - before, 1),
            "growth_job_mb": round(after_job - before, 1), "job_status": job["status"]}


def report(timings: list[dict], memory: dict | None) -> bool:
    print("\n== onboarding through POST /onboarding-app/v2/models (embedded default: SQLite, threads) ==")
    print(f"{'package':>9}  {'upload s':>8}  {'upload to ready s':>17}  status")
    for row in timings:
        print(f"{row['size_mb']:>7.1f}MB  {row['upload_s']:>8.2f}  {row['ready_s']:>17.2f}  {row['status']}")
    ok = all(row["status"] == "succeeded" for row in timings)
    if memory:
        print(f"\n== web process peak memory (VmHWM) around a {memory['package_mb']} MB upload ==")
        print(f"before {memory['peak_before_mb']} MB; after upload {memory['peak_after_upload_mb']} MB "
              f"(+{memory['growth_upload_mb']}); after the job {memory['peak_after_job_mb']} MB "
              f"(+{memory['growth_job_mb']}); upload took {memory['upload_s']} s; job {memory['job_status']}")
        within = max(memory["growth_upload_mb"], memory["growth_job_mb"]) < MEMORY_TARGET_MB
        print(f"target: growth < {MEMORY_TARGET_MB} MB -> {'PASS' if within else 'FAIL'}")
        ok = ok and within and memory["job_status"] == "succeeded"
    print(f"RESULT: {'PASS' if ok else 'FAIL'}")
    return ok


def run(args) -> int:
    harness.go_offline()
    example = harness.load_example()
    with contextlib.ExitStack() as stack:
        scratch = harness.scratch_dir(stack, "bench-onboarding-")
        base = example.make_bundle(scratch / "example")
        env = portal_env(scratch / "data")
        credential = prepare_portal(env)
        port = harness.free_port()
        cmd = [str(harness.PYTHON), "manage.py", "runserver", f"{harness.HOST}:{port}", "--noreload", "--insecure"]
        server = stack.enter_context(harness.serving("portal", cmd, env=env, port=port, log=scratch / "portal.log",
                                                     keep_as="onboarding-portal"))
        harness.wait_until(portal_ready(server), server, "serving")
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        timings = [timed_onboarding(server, credential, padded_bundle(base, scratch / f"b{mb}", mb, f"Bench{mb}MB"),
                                    args.timeout) for mb in sizes]
        memory = None
        if args.memory_mb:
            big = padded_bundle(base, scratch / "big", args.memory_mb, f"Bench{args.memory_mb}MB")
            memory = memory_check(server, credential, big, args.timeout)
        passed = report(timings, memory)
        path = harness.write_results("onboarding", {"machine": harness.machine(), "timings": timings,
                                                    "memory": memory, "pass": passed})
        print(f"wrote {path.relative_to(harness.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))

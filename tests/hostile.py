"""A hostile model for the sandbox tests: a python-flavour function that tries, from inside its
runner, what an attacker's model would (read the portal's secrets and other users' files and
environments, connect to the host's services, write outside its directory, fork without end,
leave a detached process behind, allocate past its memory) and answers with what it found. Its
answer is what its uploader can read (the smoke-test log, or a prediction), so the tests check that
answer: it must hold nothing it should not have reached.

The canaries are planted by the test: files with a secret text, a variable in the portal's own
environment, ports that listen on the host's loopback."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from acumos_portal import sandbox

from .bundles import builders


@dataclass
class Canaries:
    secret: str = field(default_factory=lambda: f"canary-{uuid.uuid4().hex}")
    files: list[str] = field(default_factory=list)  # host files holding `secret` (or private anyway)
    ports: list[tuple[str, int]] = field(default_factory=list)  # host services on loopback
    writes: list[str] = field(default_factory=list)  # host paths the model must not create
    udp: list[tuple[str, int]] = field(default_factory=list)  # host UDP services on loopback
    abstract: list[str] = field(default_factory=list)  # host abstract Unix sockets
    marker: str = field(default_factory=lambda: f"{4000 + uuid.uuid4().int % 5000}.{uuid.uuid4().int % 997 + 1}")
    forks: int = 300
    memory: int = 600 << 20

    def as_dict(self) -> dict:
        return {"secret": self.secret, "files": self.files, "ports": self.ports, "writes": self.writes,
                "udp": self.udp, "abstract": self.abstract,
                "marker": self.marker, "forks": self.forks, "memory": self.memory}


def hostile_function(canaries: dict):  # noqa: PLR0915
    """The model: `probe(cmd)` does `cmd` ("look", "fork", "detach", "memory", "sleep") and reports.
    One self-contained function: cloudpickle carries it by value into a sandbox that cannot import
    this module, so it calls no helper of its own."""

    def probe(cmd):  # noqa: PLR0912, PLR0915
        import glob
        import json
        import os
        import socket
        import time

        report = {}
        if cmd == "look":
            files = {}
            for path in canaries["files"]:
                try:
                    with open(path, "rb") as handle:
                        files[path] = "READ " + handle.read(80).decode(errors="replace")
                except OSError as exc:
                    files[path] = type(exc).__name__
            report["files"] = files
            others = {}
            for path in glob.glob("/proc/[0-9]*/environ"):
                try:
                    with open(path, "rb") as handle:
                        names = [item.split(b"=")[0].decode() for item in handle.read().split(b"\0") if item]
                    others[path.split("/")[2]] = names
                except OSError as exc:
                    others[path.split("/")[2]] = type(exc).__name__
            report["environ"] = others
            report["own_environment"] = sorted(os.environ)
            connections = {}
            for host, port in canaries["ports"]:
                try:
                    with socket.create_connection((host, port), timeout=1):
                        connections[f"{host}:{port}"] = "CONNECTED"
                except OSError as exc:
                    connections[f"{host}:{port}"] = type(exc).__name__
            for host, port in canaries["udp"]:
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                        datagram.sendto(b"from a model", (host, port))
                    connections[f"udp {host}:{port}"] = "SENT"
                except OSError as exc:
                    connections[f"udp {host}:{port}"] = type(exc).__name__
            for name in canaries["abstract"]:
                try:
                    with socket.socket(socket.AF_UNIX) as unix:
                        unix.settimeout(1)
                        unix.connect("\0" + name)
                    connections[f"abstract {name}"] = "CONNECTED"
                except OSError as exc:
                    connections[f"abstract {name}"] = type(exc).__name__
            report["connect"] = connections
            writes = {}
            for path in canaries["writes"]:
                try:
                    with open(path, "w") as handle:
                        handle.write("written by a model")
                    writes[path] = "WROTE"
                except OSError as exc:
                    writes[path] = type(exc).__name__
            report["write"] = writes
            sysctls = {}
            for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"):
                try:
                    os.close(os.open(path, os.O_WRONLY))  # opened only: nothing is written
                    sysctls[path] = "OPENED FOR WRITING"
                except OSError as exc:
                    sysctls[path] = type(exc).__name__
            report["sysctl"] = sysctls
            with open("/sandbox/setuid", "w") as handle:
                handle.write("#!/bin/sh\n")
            os.chmod("/sandbox/setuid", 0o6755)
            report["root"] = sorted(os.listdir("/"))
            report["uid"] = os.getuid()
            report["pids"] = len(glob.glob("/proc/[0-9]*"))
            with open("/proc/self/status") as status:
                report["status"] = [line.strip() for line in status if line.startswith(("CapEff", "NoNewPrivs"))]
        elif cmd == "fork":
            forked, error = 0, ""
            for _ in range(canaries["forks"]):
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = type(exc).__name__
                    break
                if pid == 0:
                    os.execv("/usr/bin/sleep", ["sleep", canaries["marker"]])
                forked += 1
            report = {"forked": forked, "error": error}
        elif cmd == "detach":
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/usr/bin/sleep", ["sleep", canaries["marker"]])
                os._exit(0)
            os.waitpid(pid, 0)
            report = {"detached": True}
        elif cmd == "memory":
            blob = bytearray(canaries["memory"])
            report = {"allocated": len(blob)}
        elif cmd == "sleep":
            time.sleep(60)
        elif cmd in ("fifo", "link"):  # a report the portal must not read: a FIFO, or a host file
            if cmd == "fifo":
                os.mkfifo("/sandbox/report.json")
            else:
                os.symlink(canaries["files"][0], "/sandbox/report.json")
            os._exit(3)
        return {"out": json.dumps(report)}

    return probe


def hostile_bundle(out: Path, canaries: Canaries, sample_cmd: str | None, name: str = "Probe") -> Path:
    return builders.pack_bundle(model=hostile_function(canaries.as_dict()), flavour="python", name=name,
                                method="probe", inputs="cmd:string", outputs="out:string", out=out,
                                sample={"cmd": sample_cmd} if sample_cmd else None, check=False)


class Listener:
    """Services on the host standing in for the portal and its neighbours: a TCP port and a UDP port
    on loopback and an abstract Unix socket. They count whatever reached them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = self.udp.getsockname()[1]
        self.abstract_name = f"acumos-canary-{uuid.uuid4().hex}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen()
        for each in (self.sock, self.udp, self.unix):
            each.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def plant(self, canaries: Canaries) -> None:
        canaries.ports.append(("127.0.0.1", self.port))
        canaries.udp.append(("127.0.0.1", self.udp_port))
        canaries.abstract.append(self.abstract_name)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for server in (self.sock, self.unix):
                try:
                    connection, _ = server.accept()
                except OSError:
                    continue
                self.accepted += 1
                connection.close()
            try:
                self.udp.recv(100)
                self.accepted += 1
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for each in (self.sock, self.udp, self.unix):
            each.close()


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds the marker (a model's leftovers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in command and state not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def reported(text: str) -> dict:
    """The report in an answer {"out": "<json>"}, alone or on a smoke-test log line."""
    answer, _ = json.JSONDecoder().raw_decode(text[text.index('{"out"'):])
    return json.loads(answer["out"])


def visible_roots() -> set[str]:
    """The top-level names a sandbox may show: the system's, its own, and the first part of each
    runtime path bound in place (this checkout's and this Python's, wherever a clone put them)."""
    bound = {path.parts[1] for path in sandbox.runtime_paths()}
    return {"bin", "dev", "etc", "lib", "lib64", "model", "proc", "root", "sandbox", "sbin", "tmp", "usr"} | bound


def assert_reached_nothing(report: dict, canaries: Canaries, *extra_secrets: str) -> None:
    text = json.dumps(report)
    for secret in (canaries.secret, os.environ.get("DJANGO_SECRET_KEY", "x" * 40), *extra_secrets):
        assert secret not in text, f"the model found {secret[:12]}...: {text[:400]}"
    assert not [path for path, found in report["files"].items() if found.startswith("READ")], report["files"]
    # Refused by the kernel's fence (PermissionError: Landlock, the seccomp guard) or by an empty
    # namespace (pasta's: nothing listens on its loopback). A UDP datagram may leave a socket in
    # pasta's namespace ("SENT") but reaches no host service: the listeners count what arrived.
    allowed = {"ConnectionRefusedError", "OSError", "TimeoutError", "PermissionError", "SENT"}
    assert set(report["connect"].values()) <= allowed, report["connect"]
    assert "CONNECTED" not in report["connect"].values()
    assert "WROTE" not in report["write"].values() and not any(Path(p).exists() for p in canaries.writes)
    assert report["pids"] <= 12, f"it sees {report['pids']} processes: only its own are in its namespace"
    assert set(report["root"]) <= visible_roots(), report["root"]
    assert "CapEff:\t0000000000000000" in report["status"] and "NoNewPrivs:\t1" in report["status"]
    assert "OPENED FOR WRITING" not in report["sysctl"].values(), report["sysctl"]
    assert report["uid"] != 0
    seen = set(report["own_environment"]).union(*map(set, report["environ"].values()))
    leaked = {name for name in seen if name.startswith(("DJANGO", "DATABASE", "AWS", "ACUMOS",
                                                                              "CANARY", "CELERY"))}
    assert not leaked and "RUNNER_ADMIN_TOKEN" not in seen, seen

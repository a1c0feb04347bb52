"""The federation TLS terminator, real nginx and real TLS.

Through a real portal (one instance the cluster starts): who gets a pong from /federation/ping and
who is refused, and why. In front of an echo server (what the portal would receive): the headers a
caller cannot forge, what is served at all, bodies, streaming, the strict alternative. And the
command's refusals."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import requests
from django.core.management import CommandError, call_command

from federation import identity, terminator
from tests.servers import free_port

from .cluster import Cluster, Credentials, Instance


@pytest.fixture(scope="module")
def instance(cluster) -> Instance:
    (made,) = cluster.make_instances(1)
    return made


def session(instance: Instance, credentials: Credentials | None) -> requests.Session:
    """A client trusting the cluster's CA, presenting `credentials` (None: no client certificate)."""
    client = instance.peer_session(credentials)
    if credentials is None:
        client.cert = None
    return client


def ping(instance: Instance, credentials: Credentials | None, **kwargs) -> requests.Response:
    return session(instance, credentials).get(f"{instance.federation_url}/federation/ping", timeout=30, **kwargs)


def registered(cluster: Cluster, instance: Instance, name: str, *, status: str = "AC") -> Credentials:
    """A client certificate from the cluster's CA whose CN the instance has as a peer (registered
    with that CA)."""
    credentials = cluster.client_certificate(f"{name}.peers.test")
    instance.add_peer(credentials, name=name, status=status)
    return credentials


def assert_refused(answer: requests.Response, code: str) -> None:
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["error"] == code, body
    assert body["content"] is None


# ---------------------------------------------------------------- through the portal

def test_a_registered_active_peer_gets_a_pong(cluster, instance):
    credentials = registered(cluster, instance, "pinger")

    answer = ping(instance, credentials)

    assert answer.status_code == 200, f"{answer.text}\n{instance.logs()}"
    body = answer.json()
    assert body["error"] is None
    assert body["content"]["you"] == "pinger"
    assert body["content"]["name"] == instance.subject
    assert body["content"]["apiUrl"] == instance.federation_url


def test_no_client_certificate_is_refused(instance):
    assert_refused(ping(instance, None), "no_client_certificate")


def test_a_certificate_whose_name_is_not_registered_is_refused(cluster, instance):
    stranger = cluster.client_certificate("stranger.peers.test")

    assert_refused(ping(instance, stranger), "unknown_peer")


def test_an_expired_certificate_of_a_registered_peer_is_refused_by_nginx(cluster, instance):
    """optional_no_ca ignores who issued a certificate, not its dates: nginx refuses it itself (the
    portal would too: authentication checks the dates)."""
    registered(cluster, instance, "lapsed")
    expired = cluster.client_certificate("lapsed.peers.test", expired=True)

    answer = ping(instance, expired)

    assert_refused(answer, "certificate_refused")
    assert "expired" in answer.json()["message"]


def test_a_registered_name_on_a_certificate_from_another_ca_is_refused(cluster, instance):
    registered(cluster, instance, "impersonated")
    impostor = cluster.client_certificate("impersonated.peers.test", untrusted=True)

    assert_refused(ping(instance, impostor), "certificate_mismatch")


def test_a_peer_set_inactive_is_refused_at_once_without_touching_nginx(cluster, instance):
    credentials = registered(cluster, instance, "retired")
    assert ping(instance, credentials).status_code == 200

    instance.set_peer_status("retired.peers.test", "IN")

    assert_refused(ping(instance, credentials), "peer_not_active")


def test_a_peer_never_activated_is_refused(cluster, instance):
    credentials = registered(cluster, instance, "applicant", status="RQ")

    assert_refused(ping(instance, credentials), "peer_not_active")


def test_the_portals_own_port_refuses_forged_terminator_headers(cluster, instance):
    credentials = registered(cluster, instance, "forged")
    forged = {"X-Client-Cert": quote(credentials.pem), "X-Client-Verify": "SUCCESS"}

    for secret in ("not-the-secret", ""):
        answer = requests.get(f"{instance.url}/federation/ping", timeout=30,
                              headers={**forged, "X-Acumos-Terminator": secret})
        assert_refused(answer, "not_through_terminator")


def test_headers_forged_through_the_terminator_do_not_stand_in_for_a_certificate(cluster, instance):
    credentials = registered(cluster, instance, "copied")
    forged = {"X-Client-Cert": quote(credentials.pem), "X-Client-Verify": "SUCCESS",
              "X-Acumos-Terminator": instance.secret}

    assert_refused(ping(instance, None, headers=forged), "no_client_certificate")


def test_only_the_peer_api_is_served_through_the_terminator(cluster, instance):
    client = session(instance, registered(cluster, instance, "wanderer"))
    assert requests.get(f"{instance.url}/accounts/login/", timeout=30).status_code == 200  # there, on its own port

    for path in ("/accounts/login/", "/", "/admin/", "/federation", "/federation/..%2Faccounts/login/",
                 "/accounts/..%2Ffederation/ping"):
        answer = client.get(f"{instance.federation_url}{path}", timeout=30, allow_redirects=False)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"] == "not_found"


# ---------------------------------------------------------------- what the portal receives

class Echo(http.server.ThreadingHTTPServer):
    """The portal's stand-in: answers every request with its path, headers and body length as JSON;
    /federation/slow sends a first part, then the rest once `release` is set."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", free_port()), EchoHandler)
        self.received: list[str] = []
        self.release = threading.Event()


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.received.append(self.path)
        if self.path == "/federation/slow":
            self._slow()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps({"path": self.path, "headers": list(self.headers.items()),
                             "body_length": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_GET

    def _slow(self):
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"first")
        self.wfile.flush()
        self.server.release.wait(20)
        self.wfile.write(b"later")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def running_nginx(config: terminator.Terminator):
    """nginx on `config` (in its directory), stopped afterwards."""
    conf = terminator.write(config, config.directory / terminator.CONF_NAME)
    process = subprocess.Popen(terminator.run_command(conf), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        port = int(config.listen.rpartition(":")[2])
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "nginx did not listen"
            time.sleep(0.05)
        yield conf
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket_to(port):
        return True
    return False


def socket_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=1)


# A secret with what nginx strings cannot hold plainly: "$" (a variable), quotes and a backslash.
AWKWARD_SECRET = 'se$cret"with\\all$'


def echo_terminator(cluster: Cluster, directory: Path, upstream: str, **extra) -> terminator.Terminator:
    server = cluster.ca.issue("terminator.test", ["127.0.0.1"])
    return terminator.Terminator(listen=f"127.0.0.1:{free_port()}", upstream=upstream, certificate=server.cert_path,
                                 key=server.key_path, secret=AWKWARD_SECRET, directory=directory,
                                 worker_user=terminator.unprivileged_user(), **extra)


@pytest.fixture(scope="module")
def echo():
    server = Echo()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def front(cluster, echo, tmp_path_factory):
    """The terminator in front of the echo server: (its https URL, its configuration)."""
    config = echo_terminator(cluster, tmp_path_factory.mktemp("front"), f"127.0.0.1:{echo.server_address[1]}")
    with running_nginx(config) as conf:
        yield f"https://{config.listen}", conf


def client(cluster: Cluster, credentials: Credentials | None = None) -> requests.Session:
    made = requests.Session()
    made.trust_env = False
    made.verify = str(cluster.ca.path)
    made.cert = credentials.pair if credentials else None
    return made


def headers_received(answer: requests.Response) -> dict[str, list[str]]:
    assert answer.status_code == 200, answer.text
    received: dict[str, list[str]] = {}
    for name, value in answer.json()["headers"]:
        received.setdefault(name.lower(), []).append(value)
    return received


FORGERIES = {"X-Acumos-Terminator": "forged", "X-Client-Cert": "forged", "X-Client-Verify": "SUCCESS",
             "X_Client_Cert": "forged", "X_Acumos_Terminator": "forged", "X-Forwarded-For": "203.0.113.9",
             "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.9", "X-Forwarded-Proto": "http"}


def test_the_portal_receives_the_terminators_headers_and_none_of_the_callers(cluster, front):
    url, _ = front
    caller = cluster.client_certificate("caller.peers.test")

    received = headers_received(client(cluster, caller).get(f"{url}/federation/ping", headers=FORGERIES, timeout=10))

    assert received["x-acumos-terminator"] == [AWKWARD_SECRET]
    assert [unquote(v) for v in received["x-client-cert"]] == [caller.pem]
    # optional_no_ca: nginx checked the key, not the issuer (it knows no CA); the portal decides.
    assert len(received["x-client-verify"]) == 1 and received["x-client-verify"][0] != "NONE"
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-forwarded-proto"] == ["https"]
    for dropped in ("x_client_cert", "x_acumos_terminator", "x-forwarded-host", "forwarded"):
        assert dropped not in received


def test_without_a_certificate_the_portal_receives_none_even_if_the_caller_sends_one(cluster, front):
    url, _ = front

    received = headers_received(client(cluster).get(f"{url}/federation/ping", headers=FORGERIES, timeout=10))

    assert "x-client-cert" not in received
    assert received["x-client-verify"] == ["NONE"]
    assert received["x-acumos-terminator"] == [AWKWARD_SECRET]


def test_paths_outside_the_peer_api_never_reach_the_portal(cluster, echo, front):
    url, _ = front
    echo.received.clear()

    for path in ("/", "/accounts/login/", "/federation", "/accounts/..%2Ffederation/ping",
                 "/federation/..%2Faccounts/login/", "/federation/%2e%2e/admin/"):
        answer = client(cluster).get(f"{url}{path}", timeout=10)
        assert answer.status_code == 404, path
        assert answer.json() == {"error": "not_found", "message": "only /federation/ is served here", "content": None}
    assert echo.received == []


def test_a_request_body_reaches_the_portal_whole_and_at_most_one_mebibyte(cluster, echo, front):
    url, _ = front
    caller = client(cluster)

    sent = caller.post(f"{url}/federation/peer/register", data=b"x" * 900_000, timeout=10)
    chunked = caller.post(f"{url}/federation/peer/register", data=iter([b"y" * 500_000] * 2), timeout=10)
    echo.received.clear()
    too_large = caller.post(f"{url}/federation/peer/register", data=b"z" * (1024 * 1024 + 1), timeout=10)

    assert sent.json()["body_length"] == 900_000
    # Sent chunked, received with a Content-Length (Django reads no body without one).
    assert chunked.json()["body_length"] == 1_000_000
    assert too_large.status_code == 413
    assert too_large.json()["error"] == "too_large"
    assert echo.received == []


def test_an_answer_streams_through_as_the_portal_sends_it(cluster, echo, front):
    url, _ = front
    echo.release.clear()

    with client(cluster).get(f"{url}/federation/slow", stream=True, timeout=10) as answer:
        first = answer.raw.read(5)  # while the portal still holds the rest back
        echo.release.set()
        rest = answer.raw.read()

    assert (first, rest) == (b"first", b"later")


def test_the_written_configuration_is_readable_by_its_owner_only(front):
    _, conf = front

    assert conf.stat().st_mode & 0o077 == 0
    assert "acumos_dollar" in conf.read_text()  # the secret's "$" escaped, as the headers above prove


def test_a_portal_that_does_not_answer_is_a_502_in_the_envelope(cluster, tmp_path):
    config = echo_terminator(cluster, tmp_path, f"127.0.0.1:{free_port()}")  # nothing listens there

    with running_nginx(config):
        answer = client(cluster).get(f"https://{config.listen}/federation/ping", timeout=10)

    assert answer.status_code == 502
    assert answer.json()["error"] == "portal_unavailable"


def test_tls_before_1_2_is_refused_by_the_server(front):
    url, _ = front
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old on purpose
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    host, port = url.removeprefix("https://").split(":")

    with pytest.raises(ssl.SSLError) as refused, socket_to(int(port)) as raw:
        old.wrap_socket(raw, server_hostname=host)

    assert "PROTOCOL_VERSION" in str(refused.value).upper() or "UNSUPPORTED_PROTOCOL" in str(refused.value).upper()


def test_the_strict_alternative_lets_nginx_refuse_what_its_bundle_did_not_issue(cluster, echo, tmp_path):
    config = echo_terminator(cluster, tmp_path, f"127.0.0.1:{echo.server_address[1]}", client_ca=cluster.ca.path)
    url = f"https://{config.listen}/federation/ping"

    echo.received.clear()
    with running_nginx(config):
        trusted = client(cluster, cluster.client_certificate("trusted.peers.test")).get(url, timeout=10)
        untrusted = client(cluster, cluster.client_certificate("trusted.peers.test", untrusted=True)).get(url)
        expired = client(cluster, cluster.client_certificate("trusted.peers.test", expired=True)).get(url)

    assert headers_received(trusted)["x-client-verify"] == ["SUCCESS"]
    assert_refused(untrusted, "certificate_refused")
    assert_refused(expired, "certificate_refused")
    assert echo.received.count("/federation/ping") == 1


# ---------------------------------------------------------------- the command and the configuration

def test_the_command_says_how_to_make_an_identity_when_there_is_none(settings, tmp_path):
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "nothing-here"

    with pytest.raises(CommandError, match="federation_identity --create"):
        call_command("federation_terminator", "--write", str(tmp_path / "nginx.conf"))
    assert not (tmp_path / "nginx.conf").exists()


def test_the_command_says_how_to_install_nginx_when_there_is_none(monkeypatch):
    monkeypatch.setattr(terminator.shutil, "which", lambda *args, **kwargs: None)

    with pytest.raises(CommandError, match="make nginx"):
        call_command("federation_terminator", "--run")


def test_the_command_wants_to_be_told_what_to_do():
    with pytest.raises(CommandError, match="--write PATH.*--run"):
        call_command("federation_terminator")


@pytest.mark.parametrize(("bind", "upstream"), [("0.0.0.0:8000", "127.0.0.1:8000"), ("[::]:8000", "[::1]:8000"),
                                                ("10.0.0.5:8080", "10.0.0.5:8080"), (":8000", "127.0.0.1:8000"),
                                                ("unix:/run/acumos.sock", "unix:/run/acumos.sock")])
def test_the_portal_is_reached_where_gunicorn_binds(bind, upstream):
    assert terminator.upstream_address(bind) == upstream


@pytest.mark.parametrize(("change", "problem"), [
    ({"secret": ""}, "is empty"),
    ({"secret": "two\nlines"}, "printable ASCII"),
    ({"secret": " padded"}, "printable ASCII"),
    ({"listen": "127.0.0.1:9443; include /etc/passwd"}, "not host:port"),
    ({"directory": Path("/tmp/$evil")}, "cannot be named"),
])
def test_what_cannot_be_written_into_an_nginx_configuration_is_refused(change, problem):
    values = {"listen": "127.0.0.1:9443", "upstream": "127.0.0.1:8000", "certificate": Path("/x/instance.crt"),
              "key": Path("/x/instance.key"), "secret": "s3cret", "directory": Path("/x/nginx"), **change}

    with pytest.raises(terminator.TerminatorProblem, match=problem):
        terminator.render(terminator.Terminator(**values))


def test_the_command_writes_what_nginx_accepts_for_this_instance_readable_by_its_owner_only(settings, tmp_path):
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "federation"
    settings.ACUMOS_FEDERATION_BIND = f"127.0.0.1:{free_port()}"
    me = identity.create("written.test", ["127.0.0.1"])
    conf = tmp_path / "out" / "nginx.conf"

    for strict in ([], ["--client-ca", str(tmp_path / "federation" / identity.CA_FILE)]):
        call_command("federation_terminator", "--write", str(conf), "--upstream", "127.0.0.1:1", *strict)
        checked = subprocess.run([terminator.nginx_binary(), "-t", "-c", str(conf)], capture_output=True, text=True,
                                 check=False)

        assert checked.returncode == 0, checked.stderr
        assert conf.stat().st_mode & 0o777 == 0o600
        text = conf.read_text()
        assert f"listen {settings.ACUMOS_FEDERATION_BIND} ssl;" in text
        assert f'ssl_certificate "{me.cert_path}";' in text
        assert ("ssl_verify_client optional;" in text) == bool(strict)

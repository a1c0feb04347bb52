"""The federation TLS terminator: an nginx configuration that serves this instance's peer API over
mutual TLS and forwards only /federation/ to the portal (`manage.py federation_terminator`).

nginx holds the TLS: its server certificate is this instance's identity (instance.crt with its
chain, instance.key), and it asks every caller for a client certificate. With the default
`ssl_verify_client optional_no_ca` nginx proves only that the caller holds the key of the
certificate it presents (the TLS handshake's CertificateVerify) and refuses one it can tell is out
of date; it does not judge who issued it. It forwards the certificate (X-Client-Cert, URL-escaped
PEM) and the result of its own check (X-Client-Verify) with ACUMOS_FEDERATION_TERMINATOR_SECRET
(X-Acumos-Terminator), and the portal decides which peer is calling (federation/authentication.py).
Why there, not in nginx: a peer is bound to its own registered certificate or CA, so a certificate
issued by peer A's CA with peer B's CN must fail; one nginx trust bundle trusts every CA in it for
every name and cannot say that. And peers come and go in the database without rewriting or
reloading nginx.

The strict alternative (`client_ca=`): `ssl_verify_client optional` against a bundle of the peers'
CAs, so nginx itself refuses (403) a certificate no listed CA issued; the portal still makes its
per-peer checks. Its cost: the bundle must be rewritten and nginx reloaded whenever a peer is
added, removed or changes CA.

The configuration is complete (run with `nginx -c FILE -g 'daemon off;'`): its pid, logs and temp
paths are under a directory of its own, so no system nginx setup is needed. It holds the secret, so
it is written readable by its owner only."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from acumos_portal.env import env_list
from federation import identity
from federation.authentication import CERT_HEADER, TERMINATOR_HEADER, VERIFY_HEADER

CONF_NAME = "nginx.conf"
DEFAULT_WEB_BIND = "127.0.0.1:8000"  # acumos_portal/gunicorn.conf.py's default for ACUMOS_WEB_BIND
MAX_BODY = "1m"  # peer API requests are small JSON; artifacts only ever flow out
# Between two reads or writes, not in total: a GB artifact streams for as long as it takes, but the
# portal may take a while before its first byte (a large artifact opened from object storage).
STREAM_TIMEOUT = "1h"
# What peers may never send themselves: the terminator sets (or, when empty, removes) each of them.
# The X-Client-* and terminator headers are the contract with federation/authentication.py.
CLEARED_HEADERS = ("Forwarded", "X-Forwarded-Host", "X-Forwarded-Port")
# Mozilla's "intermediate" TLS 1.2 suites (forward secret, AEAD); TLS 1.3 picks its own.
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")


def _answer(code: str, message: str) -> str:
    """A refusal shaped as the peer API's own (a single-quoted nginx string)."""
    return "'" + json.dumps({"error": code, "message": message, "content": None}) + "\\n'"


NOT_SERVED = _answer("not_found", "only /federation/ is served here")
CERTIFICATE_REFUSED = _answer("certificate_refused", "the TLS terminator refused the client certificate: "
                                                      "$ssl_client_verify")
TOO_LARGE = _answer("too_large", "a request to the peer API carries at most 1 MiB")
PORTAL_UNAVAILABLE = _answer("portal_unavailable", "the portal behind this terminator does not answer")
BUSY = _answer("busy", "this certificate has as many calls open as it may; finish one first")
CONNECTIONS_PER_CERTIFICATE = 4
# A caller must read what it asked for: two minutes without taking a byte, and nginx gives up on it.
SEND_TIMEOUT = "120s"
_ADDRESS = re.compile(r"^[\w.\-\[\]:*]+$")
_SAFE_PATH = re.compile(r'^[^$"\\;{}\x00-\x1f\x7f]+$')


class TerminatorProblem(Exception):
    """The terminator cannot be configured or started, with the sentence that says why."""


@dataclass(frozen=True)
class Terminator:
    """Everything one terminator configuration says."""

    listen: str  # host:port peers connect to (ACUMOS_FEDERATION_BIND)
    upstream: str  # the portal: host:port or unix:/path
    certificate: Path  # server certificate and its chain
    key: Path
    secret: str  # ACUMOS_FEDERATION_TERMINATOR_SECRET
    directory: Path  # pid, logs and temp paths
    client_ca: Path | None = None  # the strict alternative's trust bundle; None: the portal decides
    worker_user: str | None = None  # who the workers run as when the master is root


# ---------------------------------------------------------------- for this instance

def for_this_instance(directory: Path, *, upstream: str | None = None, client_ca: Path | None = None) -> Terminator:
    """The terminator of this instance's identity, listening on ACUMOS_FEDERATION_BIND; NoIdentity
    if the instance has none yet."""
    me = identity.load()
    return Terminator(listen=settings.ACUMOS_FEDERATION_BIND, upstream=upstream or default_upstream(),
                      certificate=me.cert_path, key=me.key_path, secret=settings.ACUMOS_FEDERATION_TERMINATOR_SECRET,
                      directory=Path(directory), client_ca=client_ca, worker_user=unprivileged_user())


def default_upstream() -> str:
    """Where the portal listens: the first address of ACUMOS_WEB_BIND, as gunicorn reads it."""
    return upstream_address(env_list("ACUMOS_WEB_BIND", [DEFAULT_WEB_BIND])[0])


def upstream_address(bind: str) -> str:
    """A bind address as a connectable one: a wildcard host is reached on loopback."""
    if bind.startswith("unix:"):
        return bind
    host, _, port = bind.rpartition(":")
    loopback = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "[::]": "[::1]"}
    return f"{loopback.get(host, host)}:{port}"


def unprivileged_user() -> str | None:
    """`user nobody <its group>` when rendered by root (nginx's master then reads the key and the
    certificates as root and the workers, which face the network, run as nobody); None otherwise,
    where nginx runs as whoever starts it and would only warn about a `user` line."""
    if os.geteuid() != 0:
        return None
    import grp

    for group in ("nogroup", "nobody"):
        try:
            grp.getgrnam(group)
        except KeyError:
            continue
        return f"nobody {group}"
    return "nobody"


# ---------------------------------------------------------------- the configuration

def render(terminator: Terminator) -> str:
    """The complete nginx.conf."""
    _check(terminator)
    return "\n".join([_main(terminator), "http {", _indent(_http(terminator)),
                      _indent(_server(terminator)), "}", ""])


def _check(t: Terminator) -> None:
    for what, address in (("listen address", t.listen), ("upstream", t.upstream.removeprefix("unix:"))):
        if not (_ADDRESS.match(address) or (what == "upstream" and _SAFE_PATH.match(address))):
            raise TerminatorProblem(f"the terminator's {what} {address!r} is not host:port")
    for path in (t.certificate, t.key, t.directory, *([t.client_ca] if t.client_ca else [])):
        if not _SAFE_PATH.match(str(path)):
            raise TerminatorProblem(f"{path} cannot be named in an nginx configuration "
                                    "(no $, quotes, backslashes, ;, braces or control characters)")
    if not t.secret:
        raise TerminatorProblem("ACUMOS_FEDERATION_TERMINATOR_SECRET is empty: the portal would refuse every call")
    if t.secret != t.secret.strip() or not t.secret.isascii() or not t.secret.isprintable():
        raise TerminatorProblem("ACUMOS_FEDERATION_TERMINATOR_SECRET must be printable ASCII without "
                                "spaces at its ends (it travels as an HTTP header)")


def _main(t: Terminator) -> str:
    user = f"user {t.worker_user};\n" if t.worker_user else ""
    return (f"# Written by `manage.py federation_terminator`; rewritten on every --run: edit the settings,\n"
            f"# not this file. Run: nginx -c {t.directory / CONF_NAME} -g 'daemon off;'\n"
            f"{user}"
            "worker_processes 2;\n"
            f"pid {_quoted(t.directory / 'nginx.pid')};\n"
            "error_log stderr warn;\n"
            "events { worker_connections 1024; }")


def _http(t: Terminator) -> str:
    temp = t.directory / "temp"
    temp_paths = "\n".join(f"{kind}_temp_path {_quoted(temp / kind.split('_')[-1])};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""\
log_format federation '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                      '$request_time client="$ssl_client_s_dn" verify="$ssl_client_verify"';
access_log {_quoted(t.directory / 'access.log')} federation;
# nginx wants these even though nothing is written there: bodies stay in memory (at most
# {MAX_BODY}) and answers stream (proxy_buffering off). That matters when nginx starts as root: its
# workers run as nobody and could not reach a directory inside the identity's (mode 0700).
{temp_paths}
server_tokens off;
# A header with an underscore (X_Client_Cert) would reach Django as X-Client-Cert: nginx drops it.
underscores_in_headers off;
ignore_invalid_headers on;
# nginx cannot escape "$" in a string: the secret says ${{acumos_dollar}} where it has one.
geo $acumos_dollar {{ default "$"; }}
# Answers stream from the portal's threads as fast as the caller reads: one certificate (one key
# holder) may hold at most {CONNECTIONS_PER_CERTIFICATE} of them at once, so no caller reading slowly
# takes every thread of the site.
limit_conn_zone $ssl_client_fingerprint zone=per_certificate:1m;
limit_conn_status 429;
upstream acumos_portal {{ server {t.upstream}; keepalive 8; }}"""


def _server(t: Terminator) -> str:
    return f"""\
server {{
    listen {t.listen} ssl;
    server_name _;
{_indent(_tls(t))}
    client_max_body_size {MAX_BODY};
    client_body_buffer_size {MAX_BODY};
    client_body_timeout 60s;
    send_timeout {SEND_TIMEOUT};
    default_type application/json;
    # nginx itself refuses a certificate it can tell is bad (expired, not yet valid, and in the strict
    # alternative one its bundle did not issue) before the portal sees anything: in the envelope too.
    error_page 495 = @certificate_refused;
    error_page 413 = @too_large;
    error_page 502 504 = @portal_unavailable;
    error_page 429 = @busy;

    # Only the peer API: the rest of the portal is not served to peers.
    location / {{
        return 404 {NOT_SERVED};
    }}
    location = /federation {{  # not nginx's own redirect to /federation/
        return 404 {NOT_SERVED};
    }}
    location /federation/ {{
        limit_conn per_certificate {CONNECTIONS_PER_CERTIFICATE};
        # nginx matched the normalised path; the portal receives the one sent. /x/..%2Ffederation/
        # normalises to /federation/ but is not one, so the raw one must start there too.
        if ($request_uri !~ "^/federation/") {{
            return 404 {NOT_SERVED};
        }}
{_indent(_proxy(t), 8)}
    }}
    location @certificate_refused {{
        return 403 {CERTIFICATE_REFUSED};
    }}
    location @too_large {{
        return 413 {TOO_LARGE};
    }}
    location @portal_unavailable {{
        return 502 {PORTAL_UNAVAILABLE};
    }}
    location @busy {{
        return 429 {BUSY};
    }}
}}"""


def _tls(t: Terminator) -> str:
    lines = [f"ssl_certificate {_quoted(t.certificate)};  # the instance's certificate and its chain",
             f"ssl_certificate_key {_quoted(t.key)};  # read by the master (root), before workers start",
             "ssl_protocols TLSv1.2 TLSv1.3;",
             f"ssl_ciphers {TLS12_CIPHERS};",
             "ssl_prefer_server_ciphers off;",
             "ssl_session_cache shared:acumos_federation:1m;",
             "ssl_session_tickets off;"]
    if t.client_ca is None:
        lines += ["# The caller must prove it holds the key of the certificate it presents; whether that",
                  "# certificate belongs to a registered, active peer (its own certificate, or issued by its",
                  "# own CA) the portal decides per peer, which one trust bundle here cannot express, and",
                  "# peers change without a reload. No certificate: the portal answers 403.",
                  "ssl_verify_client optional_no_ca;"]
    else:
        lines += ["# The strict alternative: nginx refuses (403) a certificate no CA in this bundle issued.",
                  "# The bundle must be rewritten and nginx reloaded when peers change;",
                  "# the portal still checks that the certificate is its peer's own.",
                  "ssl_verify_client optional;",
                  f"ssl_client_certificate {_quoted(t.client_ca)};",
                  "ssl_verify_depth 2;"]
    return "\n".join(lines)


def _proxy(t: Terminator) -> str:
    cleared = "\n".join(f'proxy_set_header {name} "";' for name in CLEARED_HEADERS)
    return f"""\
proxy_pass http://acumos_portal;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_redirect off;
# Every header below replaces the caller's own of that name, and one whose value is empty is not
# sent at all: a caller can neither forge them nor leave its own copy behind.
proxy_set_header Host $host;
proxy_set_header X-Forwarded-For $remote_addr;
proxy_set_header X-Forwarded-Proto https;
proxy_set_header X-Real-IP $remote_addr;
{cleared}
proxy_set_header {TERMINATOR_HEADER} {_secret_value(t.secret)};
proxy_set_header {CERT_HEADER} $ssl_client_escaped_cert;
proxy_set_header {VERIFY_HEADER} $ssl_client_verify;
# Answers (artifacts of GBs) stream through, never to disk.
proxy_buffering off;
proxy_max_temp_file_size 0;
# Requests are read whole first, in memory (at most client_body_buffer_size = {MAX_BODY}), before the
# portal sees them: a caller trickling a body (any key-holder gets this far, peer or not) then holds
# an nginx connection, not one of gunicorn's few workers; and a chunked body reaches Django with a
# Content-Length (without one Django reads an empty body).
proxy_request_buffering on;
proxy_connect_timeout 10s;
proxy_read_timeout {STREAM_TIMEOUT};
proxy_send_timeout {STREAM_TIMEOUT};"""


def _secret_value(secret: str) -> str:
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${acumos_dollar}")
    return f'"{escaped}"'


def _quoted(path: Path) -> str:
    return f'"{path}"'


def _indent(text: str, spaces: int = 4) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


# ---------------------------------------------------------------- writing and running it

def write(terminator: Terminator, path: Path) -> Path:
    """Write the configuration to `path`, readable by its owner only (it holds the secret), and
    make its directory; the file is replaced whole, never seen half-written."""
    text = render(terminator)
    path = Path(path)
    terminator.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (terminator.directory / "temp").mkdir(exist_ok=True, mode=0o700)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)
    return path


def nginx_binary() -> str:
    """nginx's path (also in /usr/sbin when that is not on PATH); TerminatorProblem without it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise TerminatorProblem("nginx is not installed: `make nginx` (or apt-get install nginx) installs it")
    return found


def run_command(conf: Path) -> list[str]:
    """nginx in the foreground on `conf` (SIGTERM stops it, SIGHUP reloads it)."""
    return [nginx_binary(), "-c", str(conf), "-g", "daemon off;"]

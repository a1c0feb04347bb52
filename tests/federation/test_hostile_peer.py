"""A hostile peer: a real HTTPS server on 127.0.0.1 (its certificate from a CA registered for it) that
answers what an attacker's portal would, against the real client and sync engine. Whatever it sends,
the subscriber takes a bounded amount of memory, disk and time, follows no redirect, and says why."""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from federation import sync
from federation.client import PeerClient, PeerUnavailable
from federation.models import Peer, Subscription, SyncRun

from .pki import ThrowawayCA

pytestmark = pytest.mark.django_db


class HostilePeer:
    """Serves `routes[path](handler)` over TLS; `hits` counts requests by path."""

    def __init__(self, ca: ThrowawayCA, tmp_path):
        issued = ca.issue("127.0.0.1", hosts=["127.0.0.1"])
        cert, key = issued.write(tmp_path, "hostile")
        self.routes: dict[str, Callable] = {}
        self.hits: dict[str, int] = {}
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                path = self.path.split("?")[0]
                peer.hits[path] = peer.hits.get(path, 0) + 1
                route = peer.routes.get(path)
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    route(self)  # the client may hang up on us: what these tests want it to do

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(me, tmp_path) -> Iterator[tuple[HostilePeer, Peer]]:
    ca = ThrowawayCA("Hostile CA")
    server = HostilePeer(ca, tmp_path)
    peer = Peer.objects.create(name="Hostile", subject="hostile.test", api_url=server.url, certificate=ca.pem)
    yield server, peer
    server.close()


def envelope(content) -> bytes:
    return json.dumps({"error": None, "message": "", "content": content}).encode()


def answer(handler, body: bytes, status: int = 200, **headers) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for name, value in {"Content-Length": str(len(body)), **headers}.items():
        if value is not None:
            handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def subscription_to(admin_user):
    def make(peer: Peer) -> tuple[Subscription, SyncRun]:
        subscription = Subscription.objects.create(peer=peer, catalog_id=uuid.uuid4(), owner=admin_user)
        return subscription, SyncRun.objects.create(subscription=subscription)
    return make


# ---------------------------------------------------------------- the change feed

def test_a_feed_that_says_more_forever_without_moving_is_refused(hostile, subscription_to):
    server, peer = hostile
    server.routes["/federation/changes"] = lambda h: answer(h, envelope({"changes": [], "cursor": 7, "more": True}))
    subscription, run = subscription_to(peer)
    with PeerClient(peer) as client, pytest.raises(sync.RunRefused, match="cursor does not move"):
        sync.read_changes(client, subscription, run)
    assert server.hits["/federation/changes"] <= 2


def test_a_feed_that_moves_forever_is_read_a_bounded_number_of_pages(hostile, subscription_to, monkeypatch):
    server, peer = hostile
    monkeypatch.setattr(sync, "MAX_FEED_PAGES", 5)
    pages = iter(range(1, 10**6))
    server.routes["/federation/changes"] = lambda h: answer(
        h, envelope({"changes": [], "cursor": next(pages), "more": True}))
    subscription, run = subscription_to(peer)
    with PeerClient(peer) as client:
        reached = sync.read_changes(client, subscription, run)
    assert server.hits["/federation/changes"] == 5 and reached == 5  # the next run goes on from here


@pytest.mark.parametrize("change", [{"kind": "published"}, {"revisionId": "x", "solutionId": "y", "kind": "published"},
                                    {"revisionId": str(uuid.uuid4()), "solutionId": str(uuid.uuid4()), "kind": "eaten"},
                                    "not a change"])
def test_a_malformed_change_is_refused_with_a_sentence(hostile, subscription_to, change):
    server, peer = hostile
    server.routes["/federation/changes"] = lambda h: answer(h, envelope({"changes": [change], "cursor": 1}))
    subscription, run = subscription_to(peer)
    with PeerClient(peer) as client, pytest.raises(sync.RunRefused, match="malformed change"):
        sync.read_changes(client, subscription, run)


# ---------------------------------------------------------------- sizes and time

def test_an_answer_announced_too_large_is_not_read(hostile):
    server, peer = hostile
    server.routes["/federation/catalogs"] = lambda h: answer(h, b"{}", **{"Content-Length": str(1 << 40)})
    with PeerClient(peer) as client, pytest.raises(PeerUnavailable, match="at most"):
        client.catalogs()


def test_an_endless_answer_is_cut_at_the_cap(hostile):
    server, peer = hostile

    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # no length: it goes on until the client stops reading
        chunk = b" " * (1 << 20)
        for _ in range(64):
            handler.wfile.write(chunk)

    server.routes["/federation/catalogs"] = endless
    with PeerClient(peer) as client, pytest.raises(PeerUnavailable, match="more than"):
        client.catalogs()


def test_a_download_never_takes_more_than_the_signed_size(hostile, tmp_path):
    server, peer = hostile
    server.routes["/federation/artifacts/a/content"] = lambda h: answer(h, b"x" * (4 << 20))
    target = tmp_path / "partial"
    with PeerClient(peer) as client, pytest.raises(ValueError, match="do not match the signed manifest"):
        client.download("artifacts/a/content", target, size=10, sha256="0" * 64)
    assert not target.exists()  # what did not match is not kept


def test_a_peer_that_trickles_is_dropped_at_the_runs_deadline(hostile, tmp_path):
    server, peer = hostile

    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)

    server.routes["/federation/artifacts/slow/content"] = trickle
    started = time.monotonic()
    with PeerClient(peer, deadline=time.monotonic() + 2) as client, \
            pytest.raises(PeerUnavailable, match="took longer than this run may take"):
        client.download("artifacts/slow/content", tmp_path / "slow", size=1000, sha256="0" * 64)
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------- where it sends us

def test_a_redirect_is_never_followed(hostile, me, tmp_path):
    server, peer = hostile
    elsewhere = HostilePeer(ThrowawayCA("Elsewhere"), tmp_path)
    elsewhere.routes["/secret"] = lambda h: answer(h, envelope("internal data"))
    server.routes["/federation/catalogs"] = lambda h: answer(h, b"", 302, Location=f"{elsewhere.url}/secret")
    try:
        with PeerClient(peer) as client, pytest.raises(PeerUnavailable, match="without the federation envelope"):
            client.catalogs()
        assert elsewhere.hits == {}
    finally:
        elsewhere.close()


def test_a_peer_api_url_that_is_not_https_is_never_called(me, db):
    peer = Peer(name="Plain", subject="plain.test", api_url="http://127.0.0.1:9", certificate=ThrowawayCA().pem)
    with PeerClient(peer) as client, pytest.raises(PeerUnavailable, match="https://"):
        client.ping()

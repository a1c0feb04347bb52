"""Requests the portal makes to an address a user typed (a retraining hook's URL): the guard that keeps
them off the portal's own network, and a POST pinned to the address the guard checked.

`check_url` refuses what is not http(s), a URL carrying credentials, and a host whose addresses (every
one it resolves to: a name with one public and one private address is refused) are not public:
loopback, private, link-local, multicast, reserved, unspecified, shared (100.64/10), and those
addresses written inside IPv6 (::ffff:127.0.0.1, 6to4, Teredo). An admin may allow private addresses
(SiteSettings.hooks_may_reach_private: a trainer on the same network); the scheme and credentials rules
hold even then.

It is asked when the URL is saved and again before each request (a name's DNS may change in between),
and `post` connects to the address just checked, not to whatever the name resolves to a moment later:
the host name still goes in the Host header and, for https, in SNI and the certificate check. So a
name that answers a public address to the check and 127.0.0.1 to the connection (DNS rebinding) gets
nowhere. Redirects are not followed (a public host could send the request on to a private one), and
proxies from the environment are not used (the proxy would resolve the name itself)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

SCHEMES = ("http", "https")
ANSWER_LIMIT = 64 * 1024  # bytes of an answer read; the rest is not read


class UnsafeUrl(ValueError):
    """The URL may not be called: the message names what is wrong, for the person who typed it."""


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    host: str  # as written (a name, or an address without brackets)
    address: str  # the address to connect to: every address of the host passed the check
    port: int


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, if the portal may call it; raises UnsafeUrl saying why not."""
    return checked(url, allow_private=allow_private).url


def checked(url: str, *, allow_private: bool) -> CheckedUrl:
    parts = _parts(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            why = _not_public(address)
            if why:
                named = host if _is_literal(host) else f"{host} resolves to {address}, which"
                raise UnsafeUrl(f"{named} is {why}: hooks may only call public addresses (an admin may allow "
                                "private ones in the site settings)")
    return CheckedUrl(url=url, host=host, address=str(addresses[0]), port=port)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _parts(url: str):
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("the URL is empty")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeUrl("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError as exc:
        raise UnsafeUrl(f"the URL cannot be read: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeUrl(f"the URL must start with http:// or https://, not {parts.scheme or 'nothing'}:")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("the URL may not carry a user name or password (user:pass@): the hook's requests are "
                        "signed instead")
    if not parts.hostname:
        raise UnsafeUrl("the URL names no host")
    return parts


def _resolve(host: str, port: int) -> list:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} cannot be resolved: {exc}") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])  # a zone (fe80::1%eth0) is not an address
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"{host} resolves to no address")
    return addresses


# The first that applies names the refusal. `is_global` last: it catches the rest (shared 100.64/10,
# documentation and benchmarking ranges, and so on) that none of the named tests covers.
_KINDS = (("is_unspecified", "an unspecified address"), ("is_loopback", "a loopback address"),
          ("is_link_local", "a link-local address"), ("is_multicast", "a multicast address"),
          ("is_private", "a private address"), ("is_reserved", "a reserved address"),
          ("is_site_local", "a site-local address"))


def _not_public(address) -> str:
    """Why `address` is not a public one ("" if it is). IPv6 forms that carry an IPv4 address are
    judged by that address as well."""
    for inner in _embedded(address):
        why = _not_public(inner)
        if why:
            return f"{why} (written as the IPv6 address {address})"
    for attribute, kind in _KINDS:
        if getattr(address, attribute, False):
            return kind
    if not address.is_global:
        return "not a public address"
    return ""


def _embedded(address) -> list:
    if address.version != 6:
        return []
    inner = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
    return [a for a in inner if a is not None]


# ---------------------------------------------------------------- the request, pinned

class _PinnedAdapter(HTTPAdapter):
    """Connects to the address in the URL (the checked one) while TLS is about the host name: SNI and
    the certificate's name are the name's, as if the name had been dialled."""

    def __init__(self, host: str):
        self._host = host
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self._host
        kwargs["assert_hostname"] = self._host
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most ANSWER_LIMIT bytes
    truncated: bool
    location: str  # a redirect's target (not followed), for the record


@contextlib.contextmanager
def pinned(url: str, *, allow_private: bool) -> Iterator[tuple[requests.Session, str, str]]:
    """(session, the URL with the checked address in place of the name, the Host header) for `url`, checked
    now (UnsafeUrl): the one way this portal reaches an address someone gave it. The session takes no proxy or
    credentials from the environment; its caller follows no redirect (each would need checking again)."""
    target = checked(url, allow_private=allow_private)
    parts = urlsplit(url)
    literal = f"[{target.address}]" if ":" in target.address else target.address
    address = urlunsplit((parts.scheme, f"{literal}:{target.port}", parts.path or "/", parts.query, ""))
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment, no .netrc credentials
        session.mount(f"{parts.scheme}://", _PinnedAdapter(target.host))
        yield session, address, parts.netloc  # the Host header as written, with its port if it had one


def post(url: str, body: bytes, headers: dict, *, allow_private: bool, timeout: float,
         verify: bool | str = True) -> Answer:
    """POST `body` to `url` after checking it (UnsafeUrl), connected to the checked address. Network
    errors raise requests.RequestException (or urllib3's while the answer is read)."""
    with pinned(url, allow_private=allow_private) as (session, address, host_header), \
            session.post(address, data=body, headers={**headers, "Host": host_header}, timeout=timeout,
                         allow_redirects=False, stream=True, verify=verify) as response:
        content, truncated = _read_capped(response)
    return Answer(status=response.status_code, body=content, truncated=truncated,
                  location=response.headers.get("Location", "")[:500])


def _read_capped(response: requests.Response) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while chunk := response.raw.read1(16 * 1024, decode_content=True):
        chunks.append(chunk)
        size += len(chunk)
        if size >= ANSWER_LIMIT:
            return b"".join(chunks)[:ANSWER_LIMIT], True
    return b"".join(chunks), False


NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)

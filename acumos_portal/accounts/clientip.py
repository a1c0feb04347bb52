"""Who the client is: the one answer for the sign-in lockout (django-axes), the API throttles and the
sign-up limit.

REMOTE_ADDR is the peer of the connection. Only when that peer is a proxy the operator listed
(ACUMOS_TRUSTED_PROXIES) is X-Forwarded-For read, from the right (each proxy appends the address it
got the request from): trusted proxies are skipped, and the first other address is the client.
Whatever stands left of it was written by the client itself and is ignored, so a client cannot
choose its own address by sending the header. A hand-written rule rather than django-ipware: ipware
decides trust from the header's own contents, not from the connection's peer."""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _trusted(address: Address) -> bool:
    return any(address in network for network in _networks(tuple(settings.ACUMOS_TRUSTED_PROXIES)))


def _address(text: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return mapped or address


def client_ip(request) -> str | None:
    """The client's address, as text (None when the server gave no REMOTE_ADDR, as in tests' fake requests)."""
    address = _address(request.META.get("REMOTE_ADDR"))
    if address is None:
        return request.META.get("REMOTE_ADDR") or None
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    while hops and _trusted(address):
        forwarded = _address(hops.pop())
        if forwarded is None:  # not an address: no proxy of ours wrote it, so stop at the last one that did
            break
        address = forwarded
    return str(address)

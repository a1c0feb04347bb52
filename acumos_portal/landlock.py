"""A serving runner's network fence, from the kernel's Landlock LSM (Linux 6.12 and later: ABI 6).

The runner stays on the host's network, so its port needs no forwarding (pasta's user-space relay cost
a third of the runner's requests per second), but the process and all it starts may bind TCP only on
that port and may connect over TCP to nothing at all, may not reach an abstract Unix socket or signal
a process outside the sandbox; the seccomp filter's network guard (acumos_portal.seccomp) refuses every
other kind of socket (UDP, raw, netlink, SCTP, vsock...). A Landlock domain is inherited and can never
be lifted. `restrict` is called between fork and exec, so it makes plain calls only.

No Django here."""

from __future__ import annotations

import ctypes
import functools

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
CREATE_RULESET_VERSION = 1
RULE_NET_PORT = 2
ACCESS_NET_BIND_TCP, ACCESS_NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
NEEDED_ABI = 6  # network rules (4) and scopes (6)
PR_SET_NO_NEW_PRIVS = 38


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class NetPortAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct landlock_net_port_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long


@functools.cache
def abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (too old, or the LSM is off)."""
    version = _LIBC.syscall(ctypes.c_long(CREATE_RULESET), None, ctypes.c_size_t(0),
                            ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(0, version)


def available() -> bool:
    return abi() >= NEEDED_ABI


def restrict(port: int) -> None:
    """Fence this process (and all it starts): TCP bind on `port` only, no TCP connect, no abstract
    Unix socket or signal beyond its own domain. Raises OSError if the kernel refuses."""
    _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # what an unprivileged caller needs; bwrap sets it anyway
    attr = RulesetAttr(0, ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    ruleset = _check(_LIBC.syscall(ctypes.c_long(CREATE_RULESET), ctypes.byref(attr),
                                   ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0)))
    try:
        rule = NetPortAttr(ACCESS_NET_BIND_TCP, port)
        _check(_LIBC.syscall(ctypes.c_long(ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(RULE_NET_PORT),
                             ctypes.byref(rule), ctypes.c_uint32(0)))
        _check(_LIBC.syscall(ctypes.c_long(RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)))
    finally:
        _LIBC.close(ruleset)


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock refused ({errno})")
    return result

"""The sandbox's system-call filter, compiled by libseccomp (Debian's libseccomp2: the library Docker,
podman and systemd build their filters with) and handed to bubblewrap as BPF (`--seccomp FD`).

A model needs files, memory, threads, processes and sockets; it never needs the calls below, which
load code into the kernel, reach other processes' memory, or have been the way into the kernel again
and again (io_uring, bpf, userfaultfd, perf events, keyrings). They answer EPERM, as under Docker's
default profile; anything else is allowed. A call from another ABI (x32, i386 on x86_64) kills the
process: libseccomp's default for a foreign architecture.

No Django here; the compiled filter is cached per process."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

BLOCKED = (
    # code into the kernel, or the kernel replaced
    "bpf", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    # the kernel's most attacked interfaces, which no model needs
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "perf_event_open",
    "keyctl", "add_key", "request_key",
    # other processes' memory, and leaving the namespaces bubblewrap made
    "ptrace", "process_vm_readv", "process_vm_writev", "setns", "unshare",
    # file systems and devices
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "swapon", "swapoff", "open_by_handle_at", "name_to_handle_at", "quotactl", "acct", "syslog",
    "fanotify_init", "lookup_dcookie",
    # other processes and NUMA pages
    "kcmp", "pidfd_getfd", "move_pages", "migrate_pages", "memfd_secret",
)
CLONE_NEWUSER = 0x10000000
SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 6, 7
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
STREAM_TYPES = 0xF  # the type's low bits; the rest are SOCK_NONBLOCK and SOCK_CLOEXEC
NOT_STREAM = (2, 3, 4, 5, 10)  # SOCK_DGRAM, RAW, RDM, SEQPACKET, PACKET
IPPROTO_TCP = 6
MSG_FASTOPEN = 0x20000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000


class ArgumentTest(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp: (argument `arg` & datum_a) == datum_b, for MASKED_EQ."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class SeccompUnavailable(Exception):
    """libseccomp is missing or refused: the message says what to install."""


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp is not installed ({exc}): apt-get install -y libseccomp2") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgumentTest)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


@functools.cache
def program(network_guard: bool = False) -> bytes:
    """The compiled filter (BPF), as bubblewrap reads it from a file descriptor. `network_guard`: the
    sandbox shares the host's network (fenced by Landlock, acumos_portal.landlock), so only Unix and
    TCP sockets may be made: no UDP, raw, netlink, SCTP or any other family Landlock does not fence."""
    lib = _library()
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise SeccompUnavailable("libseccomp could not make a filter")
    try:
        for name in BLOCKED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a call of this architecture (or this libseccomp is older than it)
            if lib.seccomp_rule_add(context, SCMP_ACT_ERRNO | errno.EPERM, number, 0) != 0:
                raise SeccompUnavailable(f"libseccomp refused the rule for {name}")
        _no_user_namespaces(lib, context)
        if network_guard:
            _tcp_and_unix_only(lib, context)
        read, write = os.pipe()
        try:
            if lib.seccomp_export_bpf(context, write) != 0:
                raise SeccompUnavailable("libseccomp could not export the filter")
            os.close(write)
            write = -1
            return _read_all(read)
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)
    finally:
        lib.seccomp_release(context)


def _no_user_namespaces(lib, context) -> None:
    """No new user namespace (the kernel's largest attack surface for a process without privileges):
    clone with CLONE_NEWUSER answers EPERM; clone3, whose flags a filter cannot read, answers ENOSYS,
    so the C library falls back to clone (as under Docker's default profile)."""
    clone = lib.seccomp_syscall_resolve_name(b"clone")
    test = (ArgumentTest * 1)(ArgumentTest(0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    if clone >= 0 and lib.seccomp_rule_add_array(context, SCMP_ACT_ERRNO | errno.EPERM, clone, 1, test) != 0:
        raise SeccompUnavailable("libseccomp refused the rule for clone")
    clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
    if clone3 >= 0 and lib.seccomp_rule_add(context, SCMP_ACT_ERRNO | errno.ENOSYS, clone3, 0) != 0:
        raise SeccompUnavailable("libseccomp refused the rule for clone3")


def _rule(lib, context, action: int, name: str, *tests: tuple[int, int, int, int]) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return
    array = (ArgumentTest * len(tests))(*(ArgumentTest(*test) for test in tests))
    if lib.seccomp_rule_add_array(context, action, number, len(tests), array) != 0:
        raise SeccompUnavailable(f"libseccomp refused a rule for {name}")


def _tcp_and_unix_only(lib, context) -> None:
    refuse = SCMP_ACT_ERRNO | errno.EPERM
    _rule(lib, context, refuse, "socket", (0, SCMP_CMP_GT, AF_INET6, 0))  # families above AF_INET6
    for family in range(AF_INET + 1, AF_INET6):  # between: AX.25, IPX, AppleTalk, X.25...
        _rule(lib, context, refuse, "socket", (0, SCMP_CMP_EQ, family, 0))
    _rule(lib, context, refuse, "socket", (0, SCMP_CMP_EQ, 0, 0))  # AF_UNSPEC
    for family in (AF_INET, AF_INET6):
        for kind in NOT_STREAM:
            _rule(lib, context, refuse, "socket", (0, SCMP_CMP_EQ, family, 0),
                  (1, SCMP_CMP_MASKED_EQ, STREAM_TYPES, kind))
        for protocol in range(1, IPPROTO_TCP):  # a stream of another protocol (SCTP, MPTCP above TCP)
            _rule(lib, context, refuse, "socket", (0, SCMP_CMP_EQ, family, 0), (2, SCMP_CMP_EQ, protocol, 0))
        _rule(lib, context, refuse, "socket", (0, SCMP_CMP_EQ, family, 0), (2, SCMP_CMP_GT, IPPROTO_TCP, 0))
    # TCP Fast Open connects from sendto/sendmsg: keep every connection to connect(), which Landlock sees.
    _rule(lib, context, refuse, "sendto", (3, SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN))
    _rule(lib, context, refuse, "sendmsg", (2, SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN))
    _rule(lib, context, refuse, "sendmmsg", (3, SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def descriptor(network_guard: bool = False) -> int:
    """A file descriptor holding the filter, to hand to bubblewrap (`--seccomp FD`); the caller closes it."""
    fd = os.memfd_create("acumos-seccomp", 0)
    os.write(fd, program(network_guard))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd

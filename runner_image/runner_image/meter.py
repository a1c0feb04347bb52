"""The meter: every metered request takes one unit from the installed entitlement, counted exactly
across the runner's worker processes (only with RUNNER_REQUIRE_ENTITLEMENT=1).

    state/meter.bin                  32 bytes every worker maps: the entitlement id (16 bytes, zero
                                     when none is installed or it was revoked), used (u64), refused (u64)
    state/entitlement.json           the installed signed document, or {"revoked": {id, issued, at}}
    state/entitlement-history.json   the final counts of the documents replaced or revoked, newest last

A count is an flock'd read-compare-write of the mapped file (a few microseconds, never held across an
await), so the limit holds across workers and survives a worker restart. The document and the counts
change together under that same lock, so no request sees a new document with the old count. Each
worker keeps the verified document in memory; when the id in the file is not the one it holds, another
worker installed or revoked one, and it reads the document again (checked once per document).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runner_image import metrics
from runner_image.entitlement import Entitlement, verify
from runner_image.errors import InvalidEntitlement, NotFound, UsageRefused
from runner_image.settings import Settings
from runner_image.state import read_json, write_json

log = logging.getLogger("runner_image")

LAYOUT = struct.Struct("<16sQQ")  # id, used, refused
COUNT = struct.Struct("<Q")
USED_AT, REFUSED_AT = 16, 24
NO_ID = bytes(16)
HISTORY_KEPT = 20


@dataclass(frozen=True)
class Installed:
    """What this worker holds: a verified entitlement, or the revocation of one, or nothing."""

    entitlement: Entitlement | None = None
    revoked: dict | None = None
    problem: str | None = None  # entitlement.json is there but no longer verifies

    @property
    def key(self) -> bytes:
        return self.entitlement.key if self.entitlement else NO_ID

    @property
    def issued(self) -> float | None:
        if self.entitlement:
            return self.entitlement.issued
        if self.revoked:
            return _timestamp(self.revoked["issued"])
        return None


class Meter:
    def __init__(self, settings: Settings):
        root = Path(settings.state_dir)
        self.keys, self.deployment = settings.entitlement_keys, settings.deployment_id
        self.document_path = root / "entitlement.json"
        self.history_path = root / "entitlement-history.json"
        self._fd = os.open(root / "meter.bin", os.O_RDWR | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        with self._locked(create=True):
            self._map = mmap.mmap(self._fd, LAYOUT.size)
        self._verified: dict[str, Entitlement] = {}  # by signature: each document is checked once here
        self._installed = Installed()
        self._seen: tuple | None = None
        self._allowed: tuple[int, bytes, bool] | None = None  # (generation, entitlement key, listed?)
        self.refresh(force=True)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._map.close()
            os.close(self._fd)

    # the request path ----------------------------------------------------
    def take(self, slot) -> bytes:
        """Count one prediction by `slot`'s model, or raise the 403 that says why it is refused.
        Returns the entitlement key, for give_back."""
        # The lock pair is written out rather than `with self._locked()`: this runs on every prediction,
        # and a generator-based context manager costs as much as the flock calls themselves.
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                key, used, refused = self._counts()
                refusal = self._refusal(slot, used)
                if refusal is None:
                    COUNT.pack_into(self._map, USED_AT, used + 1)
                    return key
                COUNT.pack_into(self._map, REFUSED_AT, refused + 1)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        metrics.entitlement_refused(refusal.code)
        raise refusal

    def _counts(self) -> tuple[bytes, int, int]:
        """The mapped counts (under the lock), with this worker's document brought up to date when
        another worker installed or revoked one: the id there is not the one held here, and the
        document file changed since this worker read it."""
        key, used, refused = LAYOUT.unpack_from(self._map)
        if key != self._installed.key and _file_signature(self.document_path) != self._seen:
            self._load()
            key, used, refused = LAYOUT.unpack_from(self._map)
        return key, used, refused

    def give_back(self, key: bytes) -> None:
        """Return the unit of a request refused before the model ran (a bad or unreadable request)."""
        with self._locked():
            current, used, _ = LAYOUT.unpack_from(self._map)
            if current == key and used > 0:
                COUNT.pack_into(self._map, USED_AT, used - 1)

    def _refusal(self, slot, used: int) -> UsageRefused | None:
        installed = self._installed
        entitlement = installed.entitlement
        if entitlement is None:
            return _no_entitlement(installed)
        now = time.time()
        if not entitlement.not_before <= now < entitlement.not_after:
            return _timing(entitlement, used, now)
        if not self._lists(entitlement, slot):
            return _prohibited(entitlement, used, slot)
        if entitlement.predictions is not None and used >= entitlement.predictions:
            return _exhausted(entitlement, used)
        return None

    def _lists(self, entitlement: Entitlement, slot) -> bool:
        """The entitlement covers the model this slot serves (and predict); cached per generation."""
        cached = self._allowed
        if cached is None or cached[0] != slot.generation or cached[1] != entitlement.key:
            listed = entitlement.allows_predict and slot.sha256["model"] in entitlement.models
            cached = self._allowed = (slot.generation, entitlement.key, listed)
        return cached[2]

    # installing and revoking (the caller holds the swap lock) ------------
    def install(self, document, now: float | None = None) -> Entitlement:
        self.refresh()  # what another worker installed or revoked last
        installed = self._installed
        entitlement = verify(document, self.keys, self.deployment, newer_than=installed.issued, now=now)
        if installed.revoked and installed.revoked["id"] == entitlement.id:
            raise InvalidEntitlement(f"entitlement {entitlement.id} was revoked here; a revoked entitlement is "
                                     "never taken back", {"reason": "revoked", "entitlement": entitlement.id},
                                     status=409)
        self._verified = {document["sig"]: entitlement}
        with self._locked():
            write_json(self.document_path, document)
            self._start(entitlement.key, "replaced")
            self._installed = Installed(entitlement)
            self._seen = _file_signature(self.document_path)
        log.info("entitlement %s installed (%s predictions, until %s)", entitlement.id,
                 entitlement.predictions, entitlement.body["not_after"])
        return entitlement

    def revoke(self) -> dict:
        self.refresh()
        with self._locked():
            entitlement = self._installed.entitlement
            if entitlement is None:
                if self._installed.revoked:  # DELETE again: the same answer
                    return self._revocation(self._installed.revoked["id"])
                raise NotFound("no entitlement is installed on this runner")
            marker = {"id": entitlement.id, "issued": entitlement.body["issued"], "at": _iso(time.time())}
            write_json(self.document_path, {"revoked": marker})
            used = self._start(NO_ID, "revoked")
            self._installed = Installed(revoked=marker)
            self._seen = _file_signature(self.document_path)
        log.info("entitlement %s revoked after %s predictions", entitlement.id, used)
        return {"revoked": entitlement.id, "used": used}

    def _revocation(self, entitlement_id: str) -> dict:
        used = next((e["used"] for e in reversed(self._history()) if e["id"] == entitlement_id), 0)
        return {"revoked": entitlement_id, "used": used}

    def _start(self, key: bytes, reason: str) -> int:
        """Make `key` the counted entitlement; a different one's final counts go to the history first,
        for the portal to read in `previous`. Returns the final used count of the one it replaced."""
        old, used, refused = LAYOUT.unpack_from(self._map)
        if old == key:
            return used
        if old != NO_ID:
            entry = {"id": str(uuid.UUID(bytes=old)), "used": used, "refused": refused, "reason": reason,
                     "ended": _iso(time.time())}
            write_json(self.history_path, (self._history() + [entry])[-HISTORY_KEPT:])
        LAYOUT.pack_into(self._map, 0, key, 0, 0)
        return used

    # reading -------------------------------------------------------------
    def usage(self) -> dict:
        with self._locked():
            key, used, refused = self._counts()
            installed = self._installed
        entitlement = installed.entitlement
        previous = [{"id": e["id"], "used": e["used"], "refused": e.get("refused", 0), "reason": e.get("reason"),
                     "ended": e.get("ended")} for e in reversed(self._history())]
        return {"metered": True, "entitlement": entitlement.body if entitlement else None,
                "revoked": installed.revoked, "problem": installed.problem, "used": used, "refused": refused,
                "limit": entitlement.predictions if entitlement else None, "previous": previous}

    def used(self) -> int:
        return COUNT.unpack_from(self._map, USED_AT)[0]

    def _history(self) -> list[dict]:
        return read_json(self.history_path, [])

    # following the state directory ---------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Take a document another worker wrote (the periodic thread calls this every poll interval).
        The signature is checked here, outside the lock, so the request path never verifies."""
        if not force and _file_signature(self.document_path) == self._seen:
            return
        state = read_json(self.document_path, None)
        if isinstance(state, dict) and "entitlement" in state:
            with contextlib.suppress(InvalidEntitlement):  # _load records why, once
                self._checked(state)
        with self._locked():
            self._load()

    def _load(self) -> None:
        """Read entitlement.json into this worker (under the lock); a meter that counts another id
        than the document (a crash between the two writes, or a first start) is brought in line."""
        self._seen = _file_signature(self.document_path)
        state = read_json(self.document_path, None)
        if not isinstance(state, dict):
            self._installed = Installed()
        elif "revoked" in state:
            self._installed = Installed(revoked=state["revoked"])
        else:
            try:
                self._installed = Installed(self._checked(state))
            except InvalidEntitlement as exc:
                log.error("the installed entitlement does not verify: %s", exc.message)
                self._installed = Installed(problem=exc.message)
                return
        self._start(self._installed.key, "replaced" if self._installed.entitlement else "revoked")

    def _checked(self, document: dict) -> Entitlement:
        signature = str(document.get("sig"))
        entitlement = self._verified.get(signature)
        if entitlement is None:
            entitlement = verify(document, self.keys, self.deployment, fresh=False)
            self._verified = {signature: entitlement}  # keep the newest only: documents do not come back
        return entitlement

    @contextlib.contextmanager
    def _locked(self, create: bool = False):
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if create and os.fstat(self._fd).st_size < LAYOUT.size:
                    os.ftruncate(self._fd, LAYOUT.size)  # zeros: no entitlement, nothing counted
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


# ---------------------------------------------------------------- refusals

def _details(entitlement: Entitlement, used: int) -> dict:
    return {"entitlement": entitlement.id, "agreement": entitlement.agreement, "used": used,
            "limit": entitlement.predictions, "not_after": entitlement.body["not_after"]}


def _no_entitlement(installed: Installed) -> UsageRefused:
    if installed.revoked:
        return UsageRefused("right_to_use_revoked",
                            f"The entitlement of this deployment was revoked at {installed.revoked['at']}. "
                            "Ask the licensor for a new agreement.", {"entitlement": installed.revoked["id"]})
    if installed.problem:
        return UsageRefused("agreement_not_found", f"the installed entitlement does not verify: {installed.problem}")
    return UsageRefused("agreement_not_found", "no entitlement installed yet: this deployment serves a licensed "
                                               "model, and the portal installs its entitlement when it starts it")


def _timing(entitlement: Entitlement, used: int, now: float) -> UsageRefused:
    if now < entitlement.not_before:
        message = f"This deployment's entitlement starts at {entitlement.body['not_before']}."
    else:
        message = (f"This deployment's entitlement ended at {entitlement.body['not_after']}. The portal renews it "
                   "while the agreement lasts; ask the deployment's owner or the licensor.")
    return UsageRefused("timing_constraint", message,
                        {**_details(entitlement, used), "not_before": entitlement.body["not_before"]})


def _prohibited(entitlement: Entitlement, used: int, slot) -> UsageRefused:
    if not entitlement.allows_predict:
        message = "This deployment's entitlement does not allow predictions."
    else:
        message = ("The model this runner serves is not one the entitlement covers (a swap past the portal?). "
                   "Serve a revision the agreement covers.")
    return UsageRefused("usage_prohibited", message, {**_details(entitlement, used), "model": slot.sha256["model"]})


def _exhausted(entitlement: Entitlement, used: int) -> UsageRefused:
    return UsageRefused("usage_exhausted",
                        f"This deployment has used the {entitlement.predictions} predictions its entitlement "
                        "allows. Ask the deployment's owner to renew it (the portal renews it while the agreement "
                        "has predictions left) or the licensor for more.", _details(entitlement, used))


# ---------------------------------------------------------------- helpers

def _file_signature(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()

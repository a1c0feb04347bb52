"""Canonical JSON: the bytes a signature covers (sorted keys, no spaces, UTF-8), so that signer and
checker make the same bytes from the same document whatever order it travelled in. Federation's
manifests and licensing's entitlements sign these; the runner holds its own copy (it imports nothing
of the portal), and a test checks both give the same bytes."""

from __future__ import annotations

import json


def canonical(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")

"""SM2 signatures on graph nodes the platform issues (alerts): signed when written, checked when read.

The signature covers the canonical JSON of every property of the node except provenance (``batch_id``,
``content_hash``) and the signature fields themselves, with dates as ISO 8601 and nulls left out, so what is
signed is exactly what a reader gets back from the store. A node altered in the engine after it was written,
or signed by a key the platform does not trust, reads as ``invalid`` / ``unknown_key``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from services.security.gm import SM2KeyPair

SIGNATURE_FIELDS = ("signature", "signed_by")
UNSIGNED_FIELDS = frozenset({"batch_id", "content_hash", *SIGNATURE_FIELDS})


class SignatureState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (dt.datetime, dt.date, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():  # an integer column that met a null arrives as floats
        return int(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def canonical_node(node: Mapping[str, Any]) -> bytes:
    """The bytes a node's signature covers."""
    body = {k: v for k, v in ((k, _plain(v)) for k, v in node.items() if k not in UNSIGNED_FIELDS) if v is not None}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_node(node: Mapping[str, Any], key: SM2KeyPair) -> dict[str, str]:
    """The signature fields to store with ``node``."""
    return {"signature": base64.b64encode(key.sign(canonical_node(node))).decode(), "signed_by": key.key_id}


def check_node(node: Mapping[str, Any], trusted: Mapping[str, SM2KeyPair]) -> SignatureState:
    """Whether ``node`` as read carries a valid signature by one of the ``trusted`` keys (by key id)."""
    if not node.get("signature"):
        return SignatureState.UNSIGNED
    key = trusted.get(str(node.get("signed_by")))
    if key is None:
        return SignatureState.UNKNOWN_KEY
    try:
        sig = base64.b64decode(str(node["signature"]), validate=True)
    except ValueError:
        return SignatureState.INVALID
    return SignatureState.VALID if key.verify(canonical_node(node), sig) else SignatureState.INVALID

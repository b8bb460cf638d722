"""Field protection at rest: how the store seals the ontology's encrypted properties.

The ontology marks designated identifiers ``hg:encrypted`` (resident id number, phone) and gives each a
system property ``hg:digestOf`` it (a blind index). The store calls a :class:`FieldProtector` to seal
those values before they reach the engine, to open them when they are read back, and to compute the
keyed digest used for equality lookups and joins. The graph layer holds no keys: the platform passes
an SM4-GCM protector (``services.security.FieldProtection``) when it opens the graph; without one,
:class:`PlainFields` stores the values as given (tests and tools that open a throwaway graph).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph.columnar import sha256_hex


def normalise(value: str) -> str:
    """The form a digest is taken of: ``11010519491231002x`` and ``11010519491231002X`` are one id."""
    return value.strip().upper()


class FieldProtector(Protocol):
    """Seals and opens encrypted property values; ``field`` is ``Table.property`` (bound into the ciphertext)."""

    name: str
    """What the protection is (``sm4-gcm``, ``none``): reported by ``healthgraph keys status``."""

    def seal(self, field: str, values: Sequence[str]) -> list[str]:
        """Ciphertext tokens for the values, in order."""

    def open(self, field: str, values: Sequence[str]) -> list[str]:
        """The plaintext of tokens, in order; values that are not tokens pass through unchanged."""

    def digest(self, prop: str, value: str) -> str:
        """The keyed digest of ``value`` for property ``prop`` (equal values of one property, equal digests)."""

    def digests(self, prop: str, values: pa.Array) -> list[str]:
        """``digest`` of each value of a text array without nulls, in order (what a bulk write calls)."""

    def current(self, value: str) -> bool:
        """Whether a stored value is sealed under the active key (False: re-seal it on rotation)."""


class PlainFields:
    """No encryption: values are stored as given and digests are unkeyed (SHA-256)."""

    name = "none"

    def seal(self, field: str, values: Sequence[str]) -> list[str]:
        return list(values)

    def open(self, field: str, values: Sequence[str]) -> list[str]:
        return list(values)

    def digest(self, prop: str, value: str) -> str:
        return hashlib.sha256(f"{prop}\x00{normalise(value)}".encode()).hexdigest()[:32]

    def digests(self, prop: str, values: pa.Array) -> list[str]:
        # Values that normalise() leaves as they are (printable ASCII, no lower case, no space at either
        # end: every id number and phone that passed validation) are hashed column-wise; others one by one.
        as_is = pc.match_substring_regex(values, r"^[!-`{-~]([ -`{-~]*[!-`{-~])?$").to_numpy(zero_copy_only=False)
        out = np.empty(len(values), dtype=object)
        out[as_is] = [d[:32] for d in sha256_hex(f"{prop}\x00", values.filter(as_is))]
        out[~as_is] = [self.digest(prop, v) for v in values.filter(~as_is).to_pylist()]
        return out.tolist()

    def current(self, value: str) -> bool:
        return True

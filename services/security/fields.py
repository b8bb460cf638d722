"""The platform's field protector: designated identifiers sealed with SM4-GCM, looked up by HMAC-SM3 digest.

The graph store calls it (see :mod:`graph.protect`) for every property the ontology marks
``hg:encrypted`` — the resident id number and phone (等保 2.0 level 3, GB/T 22239-2019 8.1.4.8
数据保密性: important personal data kept confidential in storage). Tokens carry their key id, so
:meth:`Keyring.rotate` followed by ``GraphStore.reseal`` (``healthgraph keys rotate``) moves every
value to the new key while old tokens stay readable until then. Digests use a separate 256-bit key
that does not rotate: rotating it would mean recomputing every digest, which ``reseal`` does not.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from graph.protect import normalise
from services.security.gm import FieldCipher, Keyring, check_secret_file, hmac_sm3, write_secret

DIGEST_KEY_BYTES = 32


def load_digest_key(path: Path) -> bytes:
    """The digest key at ``path`` (created on first use, mode 0600; when two processes race, the first wins)."""
    if not path.exists():
        fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
        write_secret(fresh, secrets.token_bytes(DIGEST_KEY_BYTES))
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    check_secret_file(path)
    return path.read_bytes()


class FieldProtection:
    """SM4-GCM sealing with a rotating keyring and HMAC-SM3 digests (a :class:`graph.protect.FieldProtector`)."""

    name = "sm4-gcm"

    def __init__(self, keyring: Keyring, digest_key: bytes) -> None:
        self.cipher = FieldCipher(keyring)
        self.keyring = keyring
        self._digest_key = digest_key

    @classmethod
    def at(cls, keyring_path: Path, digest_key_path: Path) -> FieldProtection:
        """The protection whose keys live at these paths (both created on first use)."""
        return cls(Keyring(keyring_path), load_digest_key(digest_key_path))

    def seal(self, field: str, values: Sequence[str]) -> list[str]:
        return [self.cipher.encrypt(v, field) for v in values]

    def open(self, field: str, values: Sequence[str]) -> list[str]:
        # Values stored before encryption was switched on read as they are until `keys rotate` seals them.
        return [self.cipher.decrypt(v, field) if FieldCipher.is_token(v) else v for v in values]

    def digest(self, prop: str, value: str) -> str:
        return hmac_sm3(self._digest_key, f"{prop}\x00{normalise(value)}".encode()).hex()[:32]

    def digests(self, prop: str, values: pa.Array) -> list[str]:
        return [self.digest(prop, v) for v in values.to_pylist()]

    def current(self, value: str) -> bool:
        return FieldCipher.is_token(value) and FieldCipher.key_id(value) == self.keyring.active_id

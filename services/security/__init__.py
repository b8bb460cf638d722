"""Security: national-standard (GM/T) cryptography and the tamper-evident audit log.

- :mod:`services.security.gm`: SM3 and HMAC-SM3 (GB/T 32905-2016), SM2 signatures (GB/T 32918-2016, GM/T 0009-2012),
  SM4-GCM field encryption (GB/T 32907-2016) with a rotating keyring.
- :mod:`services.security.audit_chain`: :class:`ChainedAuditLog`, the SM3-chained, SM2-checkpointed access log that
  fails closed, and :func:`verify_chain`.
- :mod:`services.security.errors`: the HG-11xx errors.
"""

from services.security.audit_chain import ChainedAuditLog, ChainReport, iter_events, verify_chain
from services.security.errors import (
    AuditTampered,
    AuditWriteFailed,
    CryptoUnavailable,
    DecryptionFailed,
    KeyFileExposed,
    KeyInvalid,
    KeyNotFound,
    SecurityError,
    SignatureInvalid,
)
from services.security.gm import DEFAULT_ID, FieldCipher, Keyring, SM2KeyPair, hmac_sm3, sm2_backends, sm3

__all__ = [
    "DEFAULT_ID", "AuditTampered", "AuditWriteFailed", "ChainReport", "ChainedAuditLog", "CryptoUnavailable",
    "DecryptionFailed", "FieldCipher", "KeyFileExposed", "KeyInvalid", "KeyNotFound", "Keyring", "SM2KeyPair",
    "SecurityError", "SignatureInvalid", "hmac_sm3", "iter_events", "sm2_backends", "sm3", "verify_chain",
]

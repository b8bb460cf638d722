"""Errors of the security layer, codes HG-11xx (see ``ontology/errors.py`` for the tree).

    SecurityError                  HG-1100
    ├── AuditTampered              HG-1101  the audit chain does not verify; details: ``seq`` (first bad entry),
    │                                       ``kind`` (modified / deleted / inserted / reordered / bad_signature /
    │                                       checkpoint_mismatch / truncated), ``line``, ``path``
    ├── AuditWriteFailed           HG-1102  an audit entry could not be made durable: release nothing (503, retryable)
    ├── SignatureInvalid           HG-1103  an SM2 signature that does not verify
    ├── DecryptionFailed           HG-1104  a token that is malformed, altered or bound to another field
    ├── KeyNotFound                HG-1105  a key id not on the keyring, or no key file where one is needed
    ├── KeyInvalid                 HG-1106  key material that cannot be read (bad PEM/hex, point not on the curve)
    ├── KeyFileExposed             HG-1107  a key file that others may read (mode must be 0600)
    └── CryptoUnavailable          HG-1108  no implementation of an algorithm on this machine
"""

from __future__ import annotations

from ontology.errors import HealthGraphError


class SecurityError(HealthGraphError):
    code = "HG-1100"
    title = "安全错误 security error"
    http_status = 500


class AuditTampered(SecurityError):
    """The audit log or its head file was changed after it was written.

    ``details["seq"]`` is the first sequence number that cannot be trusted and ``details["kind"]`` says how."""

    code = "HG-1101"
    title = "审计日志被篡改 audit log tampered"


class AuditWriteFailed(SecurityError):
    """An audit entry could not be written and made durable; the data it covers must not be released."""

    code = "HG-1102"
    title = "审计日志写入失败 audit log write failed"
    http_status = 503

    def is_retryable(self) -> bool:
        return True


class SignatureInvalid(SecurityError):
    code = "HG-1103"
    title = "签名无效 invalid signature"
    http_status = 422


class DecryptionFailed(SecurityError):
    code = "HG-1104"
    title = "解密失败 decryption failed"


class KeyNotFound(SecurityError):
    code = "HG-1105"
    title = "密钥不存在 key not found"


class KeyInvalid(SecurityError):
    code = "HG-1106"
    title = "密钥无效 invalid key"
    http_status = 422


class KeyFileExposed(SecurityError):
    code = "HG-1107"
    title = "密钥文件权限过宽 key file readable by others"


class CryptoUnavailable(SecurityError):
    code = "HG-1108"
    title = "密码算法不可用 algorithm unavailable"
    http_status = 503

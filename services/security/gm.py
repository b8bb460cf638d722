"""National-standard (国密 GM/T) cryptography: SM3 hashing, SM2 signatures and SM4-GCM field encryption.

- **SM3** (GB/T 32905-2016): :func:`sm3`, and :func:`hmac_sm3` (HMAC, RFC 2104) for keyed pseudonyms. hashlib's
  ``sm3`` when OpenSSL provides it, else the pure-Python ``gmalg``.
- **SM2** (GB/T 32918.2-2016 signatures on the curve of GB/T 32918.5-2016, SM3 digest, user id and Z value per
  GM/T 0009-2012, default id ``1234567812345678``): :class:`SM2KeyPair`. The system OpenSSL (libcrypto 3.x)
  through ctypes, else the pure-Python ``gmalg``; the two verify each other's signatures, keys are PKCS#8 /
  SubjectPublicKeyInfo PEM either way and signatures DER ``SEQUENCE {r, s}``. Nonces come from the OS CSPRNG only.
- **SM4** (GB/T 32907-2016) in GCM mode via ``cryptography``: :class:`FieldCipher` over a :class:`Keyring`.

    key = SM2KeyPair.generate()
    sig = key.sign(b"message")
    SM2KeyPair.from_pem(key.public_pem()).verify(b"message", sig)     # True

    cipher = FieldCipher(Keyring(Path("var/keys/fields.json")))
    token = cipher.encrypt("13812345678", "Person.phone")              # 'v1:<key id>:<base64>'
    cipher.decrypt(token, "Person.phone")                              # '13812345678'
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from services.security.errors import (
    CryptoUnavailable,
    DecryptionFailed,
    KeyFileExposed,
    KeyInvalid,
    KeyNotFound,
    SignatureInvalid,
)

# ---------------------------------------------------------------------------------------------------------------
# SM3 (GB/T 32905-2016)


def _sm3_hashlib(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _sm3_gmalg(data: bytes) -> bytes:
    import gmalg

    h = gmalg.SM3()
    h.update(data)
    return h.value()


def _sm3_unavailable(data: bytes) -> bytes:
    raise CryptoUnavailable("SM3 不可用 SM3 unavailable: OpenSSL lacks it and gmalg is not installed "
                            "(pip install gmalg)")


def _pick_sm3() -> Callable[[bytes], bytes]:
    if "sm3" in hashlib.algorithms_available:
        return _sm3_hashlib
    try:
        import gmalg  # noqa: F401
    except ImportError:
        return _sm3_unavailable
    return _sm3_gmalg


_SM3 = _pick_sm3()
SM3_BACKEND = {_sm3_hashlib: "hashlib", _sm3_gmalg: "gmalg"}.get(_SM3, "none")
"""Which SM3 implementation :func:`sm3` uses: ``hashlib`` (OpenSSL), ``gmalg`` (pure Python) or ``none``."""


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data`` (GB/T 32905-2016)."""
    return _SM3(data)


def _hmac(hash_fn: Callable[[bytes], bytes], key: bytes, data: bytes, block_size: int = 64) -> bytes:
    if len(key) > block_size:
        key = hash_fn(key)
    key = key.ljust(block_size, b"\0")
    inner = hash_fn(bytes(b ^ 0x36 for b in key) + data)
    return hash_fn(bytes(b ^ 0x5C for b in key) + inner)


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC-SM3 (RFC 2104 over GB/T 32905-2016): keyed 32-byte pseudonyms that cannot be recomputed without ``key``."""
    if _SM3 is _sm3_hashlib:
        return hmac.digest(key, data, "sm3")
    return _hmac(_SM3, key, data)


# ---------------------------------------------------------------------------------------------------------------
# DER, just what SM2 keys and signatures need

def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _der_int(v: int) -> bytes:
    return _der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))  # the extra byte keeps the top bit clear


def _der_read(data: bytes, tag: int) -> tuple[bytes, bytes]:
    """(content, rest) of the element at the start of ``data``, which must carry ``tag``."""
    if len(data) < 2 or data[0] != tag:
        raise ValueError(f"expected DER tag {tag:#04x}")
    n, start = data[1], 2
    if n & 0x80:
        width = n & 0x7F
        if not 1 <= width <= 4 or len(data) < 2 + width:
            raise ValueError("bad DER length")
        n, start = int.from_bytes(data[2:2 + width], "big"), 2 + width
    if len(data) < start + n:
        raise ValueError("truncated DER")
    return data[start:start + n], data[start + n:]


def _sig_encode(r: int, s: int) -> bytes:
    return _der(0x30, _der_int(r) + _der_int(s))


def _sig_decode(sig: bytes) -> tuple[int, int]:
    body, rest = _der_read(sig, 0x30)
    r, body = _der_read(body, 0x02)
    s, body = _der_read(body, 0x02)
    values = int.from_bytes(r, "big"), int.from_bytes(s, "big")
    if rest or body or _sig_encode(*values) != sig:  # only the one canonical encoding, as OpenSSL insists
        raise ValueError("not a DER SM2 signature")
    return values


# ---------------------------------------------------------------------------------------------------------------
# SM2 (GB/T 32918-2016, GM/T 0009-2012)

DEFAULT_ID = b"1234567812345678"
"""The default signer id of GM/T 0009-2012 (entered into the Z value)."""

_P = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFF_00000000_FFFFFFFF_FFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E_9D9F5E34_4D5A9E4B_CF6509A7_F39789F5_15AB8F92_DDBCBD41_4D940E93
_N = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_7203DF6B_21C6052B_53BBF409_39D54123
_OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2 = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301
_ALGORITHM = _der(0x30, _OID_EC_PUBLIC_KEY + _OID_SM2)


def _check_public(point: bytes) -> bytes:
    if len(point) != 65 or point[0] != 4:
        raise KeyInvalid("SM2 公钥无效 invalid SM2 public key: expected 65 bytes 04‖x‖y (uncompressed point)")
    x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    if x >= _P or y >= _P or (y * y - (x * x * x + _A * x + _B)) % _P:
        raise KeyInvalid("SM2 公钥无效 invalid SM2 public key: the point is not on the SM2 curve")
    return point


def _check_private(d: int) -> int:
    if not 1 <= d <= _N - 2:
        raise KeyInvalid("SM2 私钥无效 invalid SM2 private key: outside [1, n-2]")
    return d


def _check_id(uid: bytes) -> bytes:
    if not 1 <= len(uid) < 8192:
        raise KeyInvalid("SM2 用户标识无效 invalid SM2 user id: 1 to 8191 bytes (GM/T 0009-2012)")
    return uid


def _pkcs8(d: int, public: bytes | None) -> bytes:
    ec_key = _der_int(1) + _der(0x04, d.to_bytes(32, "big")) + _der(0xA0, _OID_SM2)
    if public is not None:
        ec_key += _der(0xA1, _der(0x03, b"\0" + public))
    return _der(0x30, _der_int(0) + _ALGORITHM + _der(0x04, _der(0x30, ec_key)))


def _spki(public: bytes) -> bytes:
    return _der(0x30, _ALGORITHM + _der(0x03, b"\0" + public))


def _parse_ec_private(der: bytes) -> tuple[int, bytes | None]:
    body, _ = _der_read(der, 0x30)
    _, body = _der_read(body, 0x02)
    d, body = _der_read(body, 0x04)
    public = None
    while body:
        if body[0] == 0xA0:
            params, body = _der_read(body, 0xA0)
            if params != _OID_SM2:
                raise ValueError("not on the SM2 curve")
        elif body[0] == 0xA1:
            inner, body = _der_read(body, 0xA1)
            bits, _ = _der_read(inner, 0x03)
            public = bits[1:]
        else:
            raise ValueError("unexpected field in EC private key")
    return int.from_bytes(d, "big"), public


def _parse_pkcs8(der: bytes) -> tuple[int, bytes | None]:
    body, _ = _der_read(der, 0x30)
    _, body = _der_read(body, 0x02)
    algorithm, body = _der_read(body, 0x30)
    if _OID_SM2 not in algorithm:
        raise ValueError("not an SM2 key")
    key, _ = _der_read(body, 0x04)
    return _parse_ec_private(key)


def _parse_spki(der: bytes) -> bytes:
    body, _ = _der_read(der, 0x30)
    algorithm, body = _der_read(body, 0x30)
    if _OID_SM2 not in algorithm:
        raise ValueError("not an SM2 key")
    bits, _ = _der_read(body, 0x03)
    if not bits or bits[0] != 0:
        raise ValueError("bad public key bit string")
    return bits[1:]


def _pem(label: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


def _unpem(text: str) -> tuple[str, bytes]:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("-----BEGIN ") or not lines[-1].startswith("-----END "):
        raise ValueError("not PEM")
    return lines[0][11:].rstrip("-"), base64.b64decode("".join(lines[1:-1]), validate=True)


class _Backend(Protocol):
    name: str

    def generate(self) -> tuple[int, bytes]: ...

    def public_key(self, d: int) -> bytes: ...

    def sign(self, key: SM2KeyPair, message: bytes, uid: bytes) -> bytes: ...

    def verify(self, key: SM2KeyPair, message: bytes, signature: bytes, uid: bytes) -> bool: ...


_V = ctypes.c_void_p


class _OpenSSL:
    """SM2 through the system libcrypto (OpenSSL 3.x) and ctypes: EVP_PKEY, EVP_DigestSign with SM3."""

    name = "openssl"

    def __init__(self) -> None:
        path = ctypes.util.find_library("crypto") or "libcrypto.so.3"  # the soname also loads where ldconfig is absent
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            raise CryptoUnavailable("找不到 libcrypto no libcrypto on this machine") from None
        try:
            self._bind(lib)
        except AttributeError:  # LibreSSL, OpenSSL 1.x: other names
            raise CryptoUnavailable(f"{path} 早于 OpenSSL 3 is not OpenSSL 3") from None
        if lib.OpenSSL_version_num() < 0x30000000:
            raise CryptoUnavailable(f"{path} 早于 OpenSSL 3 is older than OpenSSL 3")
        self.lib = lib
        self.sm3 = lib.EVP_MD_fetch(None, b"SM3", None)
        probe = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not probe or not self.sm3:
            lib.ERR_clear_error()
            raise CryptoUnavailable(f"{path} 不支持 SM2 lacks SM2/SM3")
        lib.EVP_PKEY_CTX_free(probe)
        self._handles = threading.Lock()

    @staticmethod
    def _bind(lib: ctypes.CDLL) -> None:
        sizep = ctypes.POINTER(ctypes.c_size_t)
        for fn, res, args in (
            ("OpenSSL_version_num", ctypes.c_ulong, []),
            ("EVP_PKEY_CTX_new_from_name", _V, [_V, ctypes.c_char_p, ctypes.c_char_p]),
            ("EVP_PKEY_CTX_new_from_pkey", _V, [_V, _V, ctypes.c_char_p]),
            ("EVP_PKEY_CTX_free", None, [_V]),
            ("EVP_PKEY_CTX_set1_id", ctypes.c_int, [_V, ctypes.c_char_p, ctypes.c_int]),
            ("EVP_PKEY_keygen_init", ctypes.c_int, [_V]),
            ("EVP_PKEY_generate", ctypes.c_int, [_V, ctypes.POINTER(_V)]),
            ("EVP_PKEY_free", None, [_V]),
            ("EVP_PKEY_is_a", ctypes.c_int, [_V, ctypes.c_char_p]),
            ("EVP_PKEY_get_bn_param", ctypes.c_int, [_V, ctypes.c_char_p, ctypes.POINTER(_V)]),
            ("EVP_PKEY_get_octet_string_param", ctypes.c_int,
             [_V, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, sizep]),
            ("BN_bn2binpad", ctypes.c_int, [_V, ctypes.c_char_p, ctypes.c_int]),
            ("BN_clear_free", None, [_V]),
            ("d2i_AutoPrivateKey", _V, [_V, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
            ("d2i_PUBKEY", _V, [_V, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
            ("EVP_MD_fetch", _V, [_V, ctypes.c_char_p, ctypes.c_char_p]),
            ("EVP_MD_CTX_new", _V, []),
            ("EVP_MD_CTX_free", None, [_V]),
            ("EVP_MD_CTX_set_pkey_ctx", None, [_V, _V]),
            ("EVP_DigestSignInit", ctypes.c_int, [_V, _V, _V, _V, _V]),
            ("EVP_DigestSign", ctypes.c_int, [_V, ctypes.c_char_p, sizep, ctypes.c_char_p, ctypes.c_size_t]),
            ("EVP_DigestVerifyInit", ctypes.c_int, [_V, _V, _V, _V, _V]),
            ("EVP_DigestVerify", ctypes.c_int, [_V, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                                ctypes.c_size_t]),
            ("ERR_clear_error", None, []),
        ):
            getattr(lib, fn).restype = res
            getattr(lib, fn).argtypes = args

    def _fail(self, what: str) -> CryptoUnavailable:
        self.lib.ERR_clear_error()
        return CryptoUnavailable(f"OpenSSL {what} 失败 failed")

    def _load(self, der: bytes, private: bool) -> int:
        src = ctypes.c_char_p(der)
        pkey = (self.lib.d2i_AutoPrivateKey if private else self.lib.d2i_PUBKEY)(None, ctypes.byref(src), len(der))
        if not pkey:
            self.lib.ERR_clear_error()
            raise KeyInvalid("SM2 密钥无效 invalid SM2 key: OpenSSL cannot read it")
        if self.lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:  # an EC key here would sign ECDSA, not SM2
            self.lib.EVP_PKEY_free(pkey)
            raise KeyInvalid("不是 SM2 密钥 not an SM2 key")
        return pkey

    def _public_of(self, pkey: int) -> bytes:
        out, n = ctypes.create_string_buffer(65), ctypes.c_size_t()
        if self.lib.EVP_PKEY_get_octet_string_param(pkey, b"pub", out, 65, ctypes.byref(n)) != 1 or n.value != 65:
            raise self._fail("public key export")
        return out.raw

    def _pkey(self, key: SM2KeyPair) -> int:
        if key._native is None:
            with self._handles:
                if key._native is None:
                    d = key._d
                    pkey = self._load(_pkcs8(d, key.public) if d is not None else _spki(key.public), d is not None)
                    weakref.finalize(key, self.lib.EVP_PKEY_free, pkey)
                    key._native = pkey
        return key._native

    def generate(self) -> tuple[int, bytes]:
        ctx, pkey, bn = self.lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None), _V(), _V()
        try:
            if not ctx or self.lib.EVP_PKEY_keygen_init(ctx) != 1 or \
                    self.lib.EVP_PKEY_generate(ctx, ctypes.byref(pkey)) != 1:
                raise self._fail("SM2 key generation")
            if self.lib.EVP_PKEY_get_bn_param(pkey, b"priv", ctypes.byref(bn)) != 1:
                raise self._fail("private key export")
            out = ctypes.create_string_buffer(32)
            if self.lib.BN_bn2binpad(bn, out, 32) != 32:
                raise self._fail("private key export")
            return int.from_bytes(out.raw, "big"), self._public_of(pkey)
        finally:
            self.lib.BN_clear_free(bn)
            self.lib.EVP_PKEY_free(pkey)
            self.lib.EVP_PKEY_CTX_free(ctx)

    def public_key(self, d: int) -> bytes:
        pkey = self._load(_pkcs8(d, None), True)
        try:
            return self._public_of(pkey)
        finally:
            self.lib.EVP_PKEY_free(pkey)

    @contextmanager
    def _digest(self, key: SM2KeyPair, uid: bytes, verify: bool) -> Iterator[int]:
        pkey = self._pkey(key)
        lib = self.lib
        mctx, pctx = lib.EVP_MD_CTX_new(), lib.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
        try:
            # the id must be on the key context before init: it enters Z = SM3(ENTL‖ID‖a‖b‖G‖P)
            if not mctx or not pctx or lib.EVP_PKEY_CTX_set1_id(pctx, uid, len(uid)) != 1:
                raise self._fail("SM2 context")
            lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
            if (lib.EVP_DigestVerifyInit if verify else lib.EVP_DigestSignInit)(mctx, None, self.sm3, None, pkey) != 1:
                raise self._fail("SM2 init")
            yield mctx
        finally:
            lib.EVP_MD_CTX_free(mctx)  # does not free pctx (it was set from outside)
            lib.EVP_PKEY_CTX_free(pctx)

    def sign(self, key: SM2KeyPair, message: bytes, uid: bytes) -> bytes:
        with self._digest(key, uid, verify=False) as mctx:
            out, n = ctypes.create_string_buffer(80), ctypes.c_size_t(80)
            if self.lib.EVP_DigestSign(mctx, out, ctypes.byref(n), message, len(message)) != 1:
                raise self._fail("SM2 sign")
            return out.raw[:n.value]

    def verify(self, key: SM2KeyPair, message: bytes, signature: bytes, uid: bytes) -> bool:
        with self._digest(key, uid, verify=True) as mctx:
            ok = self.lib.EVP_DigestVerify(mctx, signature, len(signature), message, len(message)) == 1
        if not ok:
            self.lib.ERR_clear_error()
        return ok


class _Gmalg:
    """SM2 in pure Python (``gmalg``): for machines whose libcrypto lacks SM2. About a hundred times slower."""

    name = "gmalg"

    def __init__(self) -> None:
        try:
            import gmalg
        except ImportError:
            raise CryptoUnavailable("gmalg 未安装 gmalg is not installed (pip install gmalg)") from None
        self.gmalg = gmalg

    def _sm2(self, **kw: Any) -> Any:
        # a fresh object per call: gmalg keeps hash state on the instance, so sharing one is not thread-safe
        return self.gmalg.SM2(rnd_fn=secrets.randbits, **kw)

    def generate(self) -> tuple[int, bytes]:
        sk, pk = self._sm2().generate_keypair()
        return int.from_bytes(sk, "big"), pk

    def public_key(self, d: int) -> bytes:
        return self._sm2().generate_pk(d.to_bytes(32, "big"))

    def sign(self, key: SM2KeyPair, message: bytes, uid: bytes) -> bytes:
        assert key._d is not None
        r, s = self._sm2(sk=key._d.to_bytes(32, "big"), uid=uid, pk=key.public).sign(message)
        return _sig_encode(int.from_bytes(r, "big"), int.from_bytes(s, "big"))

    def verify(self, key: SM2KeyPair, message: bytes, signature: bytes, uid: bytes) -> bool:
        try:
            r, s = _sig_decode(signature)
            if not (1 <= r < _N and 1 <= s < _N):
                return False
            return bool(self._sm2(uid=uid, pk=key.public).verify(message, r.to_bytes(32, "big"),
                                                                  s.to_bytes(32, "big")))
        except Exception:  # anything the pure-Python verifier trips over is a signature that does not verify
            return False


_BACKENDS: dict[str, _Backend] = {}
_BACKEND_TYPES: dict[str, Callable[[], _Backend]] = {"openssl": _OpenSSL, "gmalg": _Gmalg}
_backends_lock = threading.Lock()


def sm2_backend(name: str | None = None) -> _Backend:
    """The SM2 implementation called ``name`` ("openssl" or "gmalg"), or the first available when None."""
    names = [name] if name else list(_BACKEND_TYPES)
    errors = []
    with _backends_lock:
        for n in names:
            if n not in _BACKEND_TYPES:
                raise CryptoUnavailable(f"未知的 SM2 实现 unknown SM2 backend {n!r} (valid: openssl, gmalg)")
            if n not in _BACKENDS:
                try:
                    _BACKENDS[n] = _BACKEND_TYPES[n]()
                except CryptoUnavailable as exc:
                    errors.append(exc.message)
                    continue
            return _BACKENDS[n]
    raise CryptoUnavailable("SM2 不可用 SM2 unavailable: " + "; ".join(errors), tried=names)


def sm2_backends() -> list[str]:
    """The SM2 implementations available on this machine, preferred first."""
    available = []
    for n in _BACKEND_TYPES:
        try:
            sm2_backend(n)
        except CryptoUnavailable:
            continue
        available.append(n)
    return available


class SM2KeyPair:
    """An SM2 key pair, or a public key alone (which can only verify).

    Signatures follow GB/T 32918.2-2016: e = SM3(Z ‖ M) with Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)
    per GM/T 0009-2012 (``uid`` defaults to :data:`DEFAULT_ID`); they are DER ``SEQUENCE {r, s}``, as OpenSSL,
    GmSSL and Bouncy Castle write them. ``backend`` picks the implementation (:func:`sm2_backends`).
    """

    __slots__ = ("_d", "public", "backend", "_native", "__weakref__")

    def __init__(self, public: bytes, private: int | None = None, *, backend: str | None = None) -> None:
        self._d = _check_private(private) if private is not None else None
        self.public = _check_public(bytes(public))
        self.backend: _Backend = sm2_backend(backend)
        self._native: int | None = None

    @classmethod
    def generate(cls, *, backend: str | None = None) -> SM2KeyPair:
        """A new key pair; the private key is drawn from the OS CSPRNG."""
        impl = sm2_backend(backend)
        d, public = impl.generate()
        return cls(public, d, backend=impl.name)

    @classmethod
    def from_private_hex(cls, private_hex: str, *, backend: str | None = None) -> SM2KeyPair:
        """A key pair from its 64-hex-digit private key (the public key is derived)."""
        try:
            raw = bytes.fromhex(private_hex)
        except ValueError:
            raw = b""
        if not 0 < len(raw) <= 32:
            raise KeyInvalid("SM2 私钥无效 invalid SM2 private key: expected 64 hex digits")
        d = _check_private(int.from_bytes(raw, "big"))
        impl = sm2_backend(backend)
        return cls(impl.public_key(d), d, backend=impl.name)

    @classmethod
    def from_public_hex(cls, public_hex: str, *, backend: str | None = None) -> SM2KeyPair:
        """A verify-only key from its uncompressed point in hex (130 digits, 04‖x‖y)."""
        try:
            raw = bytes.fromhex(public_hex)
        except ValueError:
            raise KeyInvalid("SM2 公钥无效 invalid SM2 public key: not hex") from None
        return cls(raw, backend=backend)

    @classmethod
    def from_pem(cls, pem: str | bytes, *, backend: str | None = None) -> SM2KeyPair:
        """A key from PEM: ``PRIVATE KEY`` (PKCS#8), ``EC PRIVATE KEY`` (SEC 1) or ``PUBLIC KEY`` (SPKI)."""
        text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
        try:
            label, der = _unpem(text)
            if label == "PUBLIC KEY":
                return cls(_parse_spki(der), backend=backend)
            if label not in ("PRIVATE KEY", "EC PRIVATE KEY"):
                raise ValueError(f"unexpected PEM label {label!r}")
            d, public = (_parse_pkcs8 if label == "PRIVATE KEY" else _parse_ec_private)(der)
        except (ValueError, IndexError) as exc:
            raise KeyInvalid(f"SM2 密钥无效 invalid SM2 key: {exc}") from None
        impl = sm2_backend(backend)
        derived = impl.public_key(_check_private(d))
        if public is not None and public != derived:
            raise KeyInvalid("SM2 密钥无效 invalid SM2 key: the public key does not match the private key")
        return cls(derived, d, backend=impl.name)

    @classmethod
    def load(cls, path: Path, *, create: bool = False, backend: str | None = None) -> SM2KeyPair:
        """Read a PEM key file (which must be 0600 when it holds a private key); with ``create``, make one first."""
        if not path.exists():
            if not create:
                raise KeyNotFound(f"密钥文件不存在 no key file at {path}", path=str(path))
            key = cls.generate(backend=backend)
            write_secret(path, key.private_pem().encode())
            return key
        text = path.read_text(encoding="ascii")
        if "PRIVATE KEY" in text:
            check_secret_file(path)
        return cls.from_pem(text, backend=backend)

    @property
    def has_private(self) -> bool:
        return self._d is not None

    @property
    def key_id(self) -> str:
        """A short stable name of the public key: the first 16 hex digits of its SM3 digest."""
        return sm3(self.public).hex()[:16]

    def public_hex(self) -> str:
        return self.public.hex()

    def private_hex(self) -> str:
        return f"{self._private():064x}"

    def public_pem(self) -> str:
        return _pem("PUBLIC KEY", _spki(self.public))

    def private_pem(self) -> str:
        return _pem("PRIVATE KEY", _pkcs8(self._private(), self.public))

    def public_key(self) -> SM2KeyPair:
        """The verify-only half."""
        return SM2KeyPair(self.public, backend=self.backend.name)

    def using(self, backend: str) -> SM2KeyPair:
        """The same key on another implementation."""
        return SM2KeyPair(self.public, self._d, backend=backend)

    def _private(self) -> int:
        if self._d is None:
            raise KeyNotFound("只有公钥 public key only: this key cannot sign or export a private key",
                              key_id=self.key_id)
        return self._d

    def sign(self, message: bytes, uid: bytes = DEFAULT_ID) -> bytes:
        """The DER signature of ``message``; each call draws a fresh nonce from the OS CSPRNG."""
        self._private()
        return self.backend.sign(self, message, _check_id(uid))

    def verify(self, message: bytes, signature: bytes, uid: bytes = DEFAULT_ID) -> bool:
        """True when ``signature`` is this key's valid signature of ``message`` under ``uid``."""
        return self.backend.verify(self, message, signature, _check_id(uid))

    def check(self, message: bytes, signature: bytes, uid: bytes = DEFAULT_ID) -> None:
        """Like :meth:`verify`, raising :class:`SignatureInvalid` (HG-1103) instead of returning False."""
        if not self.verify(message, signature, uid):
            raise SignatureInvalid(f"签名无效 invalid signature: does not verify under key {self.key_id}",
                                   key_id=self.key_id)

    def __repr__(self) -> str:
        kind = "key pair" if self.has_private else "public key"
        return f"<SM2 {kind} {self.key_id} ({self.backend.name})>"


# ---------------------------------------------------------------------------------------------------------------
# Secrets on disk

def check_secret_file(path: Path) -> None:
    """Refuse a key file that anyone but its owner may read (like ssh does)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileExposed(f"密钥文件权限过宽 key file readable by others: {path} has mode {mode:04o}; "
                             f"run chmod 600 {path}", path=str(path), mode=f"{mode:04o}")


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# SM4-GCM field encryption (GB/T 32907-2016)

class Keyring:
    """SM4 keys by id in a JSON file (mode 0600, path from the caller), one of them active.

    New tokens use the active key; :meth:`rotate` adds a new active key and keeps the old ones, so every token
    stays readable until :meth:`FieldCipher.reencrypt` has moved it. The file is created on first use unless
    ``create`` is False. Rotations by several processes are serialised by a lock file beside it.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._lock = threading.Lock()
        if not path.exists():
            if not create:
                raise KeyNotFound(f"密钥环不存在 no keyring at {path}", path=str(path))
            with self._locked():
                if not path.exists():
                    self._save({"version": 1, "active": "", "keys": {}}, new_key=True)
        self._load()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> None:
        check_secret_file(self.path)
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            keys = {k: base64.b64decode(v["sm4"]) for k, v in doc["keys"].items()}
            active = doc["active"]
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyInvalid(f"密钥环无效 invalid keyring {self.path}: {exc}", path=str(self.path)) from None
        if active not in keys or any(len(k) != 16 for k in keys.values()):
            raise KeyInvalid(f"密钥环无效 invalid keyring {self.path}: no active 128-bit key", path=str(self.path))
        self._doc, self._keys, self.active_id = doc, keys, active

    def _save(self, doc: dict[str, Any], *, new_key: bool) -> str:
        if new_key:
            key_id = secrets.token_hex(4)
            while key_id in doc["keys"]:
                key_id = secrets.token_hex(4)
            doc["keys"][key_id] = {"sm4": base64.b64encode(secrets.token_bytes(16)).decode(),
                                   "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            doc["active"] = key_id
        write_secret(self.path, json.dumps(doc, indent=1).encode())
        return doc["active"]

    @property
    def ids(self) -> list[str]:
        """Every key id on the ring, oldest first."""
        return list(self._keys)

    def key(self, key_id: str) -> bytes:
        """The 128-bit key ``key_id``; re-reads the file once in case another process rotated."""
        with self._lock:
            if key_id not in self._keys:
                self._load()
            if key_id not in self._keys:
                raise KeyNotFound(f"密钥不存在 key not found: {key_id!r} is not on the keyring {self.path}",
                                  key_id=key_id, path=str(self.path))
            return self._keys[key_id]

    def active(self) -> tuple[str, bytes]:
        with self._lock:
            return self.active_id, self._keys[self.active_id]

    def rotate(self) -> str:
        """Add a new key and make it active; returns its id. Old keys stay for decryption."""
        with self._lock, self._locked():
            self._load()
            key_id = self._save(self._doc, new_key=True)
            self._load()
            return key_id


def _sm4_gcm(key: bytes, nonce: bytes, tag: bytes | None = None) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        raise CryptoUnavailable("SM4 不可用 SM4 unavailable: pip install 'cryptography>=42'") from None
    return Cipher(algorithms.SM4(key), modes.GCM(nonce, tag))


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """SM4 (GB/T 32907-2016) in GCM mode (NIST SP 800-38D, as RFC 8998 uses it): ciphertext ‖ 16-byte tag."""
    enc = _sm4_gcm(key, nonce).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of :func:`sm4_gcm_encrypt` output; :class:`DecryptionFailed` when anything was altered."""
    from cryptography.exceptions import InvalidTag

    if len(data) < 16:
        raise DecryptionFailed("解密失败 decryption failed: shorter than the tag")
    dec = _sm4_gcm(key, nonce, data[-16:]).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(data[:-16]) + dec.finalize()
    except InvalidTag:
        raise DecryptionFailed("解密失败 decryption failed: the data or its associated data was altered") from None


class FieldCipher:
    """SM4-GCM (GB/T 32907-2016 in the GCM mode of NIST SP 800-38D) for single field values.

    A token is ``v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`` with a random 96-bit nonce and a 128-bit tag.
    The field name (``table.property``) is authenticated with it, so a token copied into another field, or
    altered in any way, fails to decrypt with :class:`DecryptionFailed` (HG-1104). Random nonces allow about
    2³² encryptions per key: rotate well before that.
    """

    VERSION = "v1"

    def __init__(self, keyring: Keyring) -> None:
        try:  # fail now rather than on the first field
            sm4_gcm_encrypt(bytes(16), bytes(12), b"")
        except CryptoUnavailable:
            raise
        except Exception as exc:  # UnsupportedAlgorithm from cryptography before 42
            raise CryptoUnavailable("SM4-GCM 不可用 SM4-GCM unavailable: needs cryptography>=42") from exc
        self.keyring = keyring

    @staticmethod
    def _aad(key_id: str, field: str) -> bytes:
        return f"{FieldCipher.VERSION}:{key_id}:{field}".encode()

    def encrypt(self, value: str, field: str) -> str:
        """The token of ``value`` for the field ``field`` (e.g. "Person.phone") under the active key."""
        key_id, key = self.keyring.active()
        nonce = secrets.token_bytes(12)
        body = sm4_gcm_encrypt(key, nonce, value.encode("utf-8"), self._aad(key_id, field))
        return f"{self.VERSION}:{key_id}:{base64.urlsafe_b64encode(nonce + body).rstrip(b'=').decode()}"

    @staticmethod
    def key_id(token: str) -> str:
        """The id of the key a token was made with."""
        parts = token.split(":")
        if len(parts) != 3 or parts[0] != FieldCipher.VERSION or not parts[1]:
            raise DecryptionFailed("解密失败 decryption failed: not a v1 field token")
        return parts[1]

    @staticmethod
    def is_token(value: Any) -> bool:
        return isinstance(value, str) and value.startswith(FieldCipher.VERSION + ":") and value.count(":") == 2

    def decrypt(self, token: str, field: str) -> str:
        """The value inside ``token``; :class:`DecryptionFailed` when it was altered or belongs to another field."""
        key_id = self.key_id(token)
        key = self.keyring.key(key_id)
        try:
            b64 = token.rsplit(":", 1)[1]
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), altchars=b"-_", validate=True)
        except ValueError:
            raise DecryptionFailed("解密失败 decryption failed: the token is not base64") from None
        if len(raw) < 28:
            raise DecryptionFailed("解密失败 decryption failed: the token is too short")
        try:
            plain = sm4_gcm_decrypt(key, raw[:12], raw[12:], self._aad(key_id, field))
        except DecryptionFailed:
            raise DecryptionFailed(f"解密失败 decryption failed: the token was altered or is not for field {field!r}",
                                   field=field, key_id=key_id) from None
        return plain.decode("utf-8")

    def reencrypt(self, token: str, field: str) -> str:
        """``token`` under the active key (unchanged when it already is)."""
        if self.key_id(token) == self.keyring.active_id:
            return token
        return self.encrypt(self.decrypt(token, field), field)

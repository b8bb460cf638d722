"""National-standard cryptography: SM3 (GB/T 32905-2016), SM2 (GB/T 32918-2016), SM4-GCM (GB/T 32907-2016)."""

from __future__ import annotations

import hashlib
import hmac
import re
import stat
from pathlib import Path

import pytest

from services.security import gm
from services.security.errors import DecryptionFailed, KeyFileExposed, KeyInvalid, KeyNotFound, SignatureInvalid
from services.security.gm import DEFAULT_ID, FieldCipher, Keyring, SM2KeyPair, hmac_sm3, sm2_backends, sm3

# GB/T 32905-2016 Appendix A: "abc" and the 512-bit message "abcd" × 16
SM3_VECTORS = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
]
SM3_IMPLEMENTATIONS = [gm._sm3_gmalg] + ([gm._sm3_hashlib] if "sm3" in hashlib.algorithms_available else [])
BACKENDS = sm2_backends()


@pytest.mark.parametrize("impl", SM3_IMPLEMENTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("message", "digest"), SM3_VECTORS, ids=["abc", "512-bit"])
def test_sm3_standard_vectors(impl, message: bytes, digest: str) -> None:
    assert impl(message).hex() == digest


def test_sm3_uses_the_fastest_available_and_agrees_with_the_fallback() -> None:
    data = bytes(range(256)) * 5
    assert sm3(data) == gm._sm3_gmalg(data)
    assert gm.SM3_BACKEND == ("hashlib" if "sm3" in hashlib.algorithms_available else "gmalg")


@pytest.mark.skipif("sm3" not in hashlib.algorithms_available, reason="the reference HMAC needs hashlib's sm3")
@pytest.mark.parametrize("key", [b"k", b"\x0b" * 64, b"a key longer than the 64-byte SM3 block" * 3])
def test_hmac_sm3_matches_the_standard_library_construction(key: bytes) -> None:
    data = "患者 330106199001011234".encode()
    reference = hmac.new(key, data, "sm3").digest()
    assert hmac_sm3(key, data) == reference
    assert gm._hmac(gm._sm3_gmalg, key, data) == reference  # the fallback path
    assert hmac_sm3(key + b"!", data) != reference


# GB/T 32918.2-2016 worked example on the recommended curve (id 1234567812345678, message "message digest")
EXAMPLE_D = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
EXAMPLE_PUBLIC = ("04" "09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
                  "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13")
EXAMPLE_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
EXAMPLE_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA


@pytest.mark.parametrize("backend", BACKENDS)
def test_sm2_standard_example_verifies(backend: str) -> None:
    key = SM2KeyPair.from_private_hex(EXAMPLE_D, backend=backend)
    assert key.public_hex() == EXAMPLE_PUBLIC
    sig = gm._sig_encode(EXAMPLE_R, EXAMPLE_S)
    assert key.verify(b"message digest", sig)
    assert not key.verify(b"message digesT", sig)
    assert not key.verify(b"message digest", gm._sig_encode(EXAMPLE_R, EXAMPLE_S - 1))
    assert not key.verify(b"message digest", sig, uid=b"ALICE123@YAHOO.COM")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sm2_round_trip_and_tampering(backend: str) -> None:
    key = SM2KeyPair.generate(backend=backend)
    assert key.backend.name == backend and key.has_private
    message = "审计检查点 seq 1000".encode()
    sig = key.sign(message)
    assert key.verify(message, sig)
    assert key.public_key().verify(message, sig)
    assert not key.verify(message + b"x", sig)
    assert not key.verify(message, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not key.verify(message, b"not a signature")
    assert not SM2KeyPair.generate(backend=backend).verify(message, sig)
    assert key.sign(message) != sig  # a fresh nonce every time
    with pytest.raises(SignatureInvalid) as err:
        key.check(message + b"x", sig)
    assert err.value.code == "HG-1103"


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both the OpenSSL and the pure-Python SM2")
@pytest.mark.parametrize("uid", [DEFAULT_ID, b"ALICE123@YAHOO.COM"])
def test_sm2_backends_verify_each_other(uid: bytes) -> None:
    key = SM2KeyPair.generate(backend="openssl")
    other = key.using("gmalg")
    message = b"cross-verify"
    by_openssl, by_gmalg = key.sign(message, uid), other.sign(message, uid)
    assert other.verify(message, by_openssl, uid) and key.verify(message, by_gmalg, uid)
    # the id enters Z (GM/T 0009-2012): the same signature under another id must fail on both
    wrong = b"1234567812345679"
    assert not other.verify(message, by_openssl, wrong) and not key.verify(message, by_gmalg, wrong)


def test_sm2_falls_back_to_pure_python_when_libcrypto_lacks_sm2(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sm2() -> None:
        raise gm.CryptoUnavailable("libcrypto.so.3 不支持 SM2 lacks SM2/SM3")

    monkeypatch.setattr(gm, "_BACKENDS", {})
    monkeypatch.setattr(gm, "_BACKEND_TYPES", {"openssl": no_sm2, "gmalg": gm._Gmalg})
    assert sm2_backends() == ["gmalg"]
    key = SM2KeyPair.from_private_hex(EXAMPLE_D)
    assert key.backend.name == "gmalg" and key.verify(b"message digest", gm._sig_encode(EXAMPLE_R, EXAMPLE_S))
    monkeypatch.setattr(gm, "_BACKEND_TYPES", {"openssl": no_sm2})
    monkeypatch.setattr(gm, "_BACKENDS", {})
    with pytest.raises(gm.CryptoUnavailable) as err:
        SM2KeyPair.generate()
    assert err.value.code == "HG-1108" and "lacks SM2" in err.value.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_sm2_key_import_export(backend: str, tmp_path: Path) -> None:
    key = SM2KeyPair.generate(backend=backend)
    pem = key.private_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    again = SM2KeyPair.from_pem(pem, backend=backend)
    assert again.private_hex() == key.private_hex() and again.public == key.public
    public = SM2KeyPair.from_pem(key.public_pem(), backend=backend)
    assert not public.has_private and public.key_id == key.key_id
    assert SM2KeyPair.from_public_hex(key.public_hex()).public == key.public
    assert SM2KeyPair.from_private_hex(key.private_hex(), backend=backend).public == key.public
    with pytest.raises(KeyNotFound):
        public.sign(b"x")
    path = tmp_path / "keys" / "k.pem"
    made = SM2KeyPair.load(path, create=True, backend=backend)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SM2KeyPair.load(path, backend=backend).public == made.public


def test_sm2_rejects_bad_keys(tmp_path: Path) -> None:
    key = SM2KeyPair.generate()
    off_curve = key.public[:-1] + bytes([key.public[-1] ^ 1])
    with pytest.raises(KeyInvalid) as err:
        SM2KeyPair(off_curve)
    assert err.value.code == "HG-1106"
    with pytest.raises(KeyInvalid):
        SM2KeyPair.from_pem(key.public_pem().replace("PUBLIC KEY", "CERTIFICATE"))
    with pytest.raises(KeyInvalid):
        SM2KeyPair.from_private_hex("00" * 32)
    path = tmp_path / "k.pem"
    path.write_text(key.private_pem())
    path.chmod(0o644)
    with pytest.raises(KeyFileExposed):
        SM2KeyPair.load(path)


def test_sm4_standard_vectors() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    block = Cipher(algorithms.SM4(key), modes.ECB()).encryptor().update(key)
    assert block.hex() == "681edf34d206965e86b3e94f536e4246"  # GB/T 32907-2016 Appendix A.1
    # RFC 8998 Appendix A.1 (SM4-GCM)
    nonce, aad = bytes.fromhex("00001234567800000000abcd"), bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plain = bytes.fromhex("aa" * 8 + "bb" * 8 + "cc" * 8 + "dd" * 8 + "ee" * 8 + "ff" * 8 + "ee" * 8 + "aa" * 8)
    sealed = gm.sm4_gcm_encrypt(key, nonce, plain, aad)
    assert sealed.hex() == ("17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
                            "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
                            "83de3541e4c2b58177e065a9bf7b62ec")
    assert gm.sm4_gcm_decrypt(key, nonce, sealed, aad) == plain
    with pytest.raises(DecryptionFailed):
        gm.sm4_gcm_decrypt(key, nonce, sealed, aad + b"x")


@pytest.fixture
def cipher(tmp_path: Path) -> FieldCipher:
    return FieldCipher(Keyring(tmp_path / "keys" / "fields.json"))


def test_sm4_gcm_round_trip(cipher: FieldCipher) -> None:
    for value in ("13812345678", "浙江省杭州市西湖区 某某路 1 号", ""):
        token = cipher.encrypt(value, "Person.phone")
        assert re.fullmatch(r"v1:[0-9a-f]{8}:[A-Za-z0-9_-]+", token)
        assert value not in token or value == ""
        assert cipher.decrypt(token, "Person.phone") == value
    assert cipher.encrypt("same", "Person.phone") != cipher.encrypt("same", "Person.phone")  # random nonce
    assert stat.S_IMODE(cipher.keyring.path.stat().st_mode) == 0o600


def test_sm4_gcm_rejects_another_field_and_tampering(cipher: FieldCipher) -> None:
    token = cipher.encrypt("330106199001011234", "Person.id_number")
    with pytest.raises(DecryptionFailed) as err:
        cipher.decrypt(token, "Person.phone")
    assert err.value.code == "HG-1104"
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token[:-6], token + "!", "v1:" + token.split(":")[1] + ":", "v2" + token[2:]):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(bad, "Person.id_number")
    with pytest.raises(KeyNotFound) as missing:
        cipher.decrypt("v1:deadbeef:" + token.split(":")[2], "Person.id_number")
    assert missing.value.code == "HG-1105"


def test_key_rotation_keeps_old_tokens_and_reencrypt_moves_them(cipher: FieldCipher, tmp_path: Path) -> None:
    old_id = cipher.keyring.active_id
    old = cipher.encrypt("13812345678", "Person.phone")
    new_id = cipher.keyring.rotate()
    assert new_id != old_id and cipher.keyring.active_id == new_id and cipher.keyring.ids == [old_id, new_id]
    assert FieldCipher.key_id(cipher.encrypt("x", "Person.phone")) == new_id
    assert cipher.decrypt(old, "Person.phone") == "13812345678"
    moved = cipher.reencrypt(old, "Person.phone")
    assert FieldCipher.key_id(moved) == new_id and cipher.decrypt(moved, "Person.phone") == "13812345678"
    assert cipher.reencrypt(moved, "Person.phone") == moved
    # another process's keyring sees the rotation on the file
    other = FieldCipher(Keyring(cipher.keyring.path, create=False))
    assert other.decrypt(moved, "Person.phone") == "13812345678"
    third = cipher.keyring.rotate()
    assert other.decrypt(cipher.encrypt("y", "Person.phone"), "Person.phone") == "y"
    assert third in other.keyring.ids


def test_keyring_refuses_missing_or_exposed_files(tmp_path: Path) -> None:
    with pytest.raises(KeyNotFound):
        Keyring(tmp_path / "none.json", create=False)
    ring = Keyring(tmp_path / "ring.json")
    ring.path.chmod(0o640)
    with pytest.raises(KeyFileExposed) as err:
        Keyring(ring.path)
    assert err.value.code == "HG-1107"

"""Designated identifiers at rest: SM4-GCM ciphertext in the engine, plaintext through the store, key rotation.

Requirement: 等保 2.0 level 3 (GB/T 22239-2019 8.1.4.8 数据保密性) — important personal data confidential in
storage; the ontology designates which properties (``hg:encrypted``: resident id number and phone).
The session's shared store is opened with the platform's protector, so every other integration test (and the
idempotent re-load in test_load.py) runs over encrypted identifiers too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graph import GraphStore, Provenance, open_graph
from ontology.model import Ontology
from services.security import DecryptionFailed, FieldCipher
from services.security.fields import FieldProtection, load_digest_key


def _raw(store: GraphStore, table: str, columns: list[str]) -> pd.DataFrame:
    """What the engine itself holds, bypassing the store's opening (the test's one look behind graph/)."""
    ret = ", ".join(f"n.{c} AS {c}" for c in ["key", *columns])
    return store._run(f"MATCH (n:{table}) RETURN {ret} ORDER BY key")


def _protection(folder: Path) -> FieldProtection:
    return FieldProtection.at(folder / "fields-sm4.json", folder / "fields-digest.key")


def _people(n: int, prefix: str = "T") -> pd.DataFrame:
    ids = ["11010519491231002X", "110105194912310021", "330106198001010019"]
    return pd.DataFrame({
        "key": [f"{prefix}:{i}" for i in range(n)], "class": "Resident", "source_system": prefix,
        "source_id": [str(i) for i in range(n)], "name": "张三", "sex": "1",
        "birth_date": pd.to_datetime(["1949-12-31"] * n).date,
        "id_number": [ids[i % len(ids)] for i in range(n)], "phone": [f"1380000{i:04d}" for i in range(n)],
    })


def test_the_ontology_designates_id_number_and_phone(onto: Ontology) -> None:
    assert {p.name for p in onto.properties.values() if p.encrypted} == {"id_number", "phone"}
    assert {p.digest_of for p in onto.properties.values() if p.digest_of} == {"id_number", "phone"}


def test_the_engine_holds_only_ciphertext_and_the_store_reads_plaintext(store: GraphStore) -> None:
    raw = _raw(store, "Resident", ["id_number", "phone", "id_number_digest"])
    present = raw["id_number"].dropna()
    assert len(present) > 1000
    assert all(FieldCipher.is_token(v) for v in present)
    assert all(FieldCipher.is_token(v) for v in raw["phone"].dropna())
    assert not any(len(v) == 18 and v[:17].isdigit() for v in present)
    opened = store.nodes("Resident", ["id_number", "phone"]).set_index("key")
    sample = raw.dropna(subset=["id_number"]).iloc[0]
    plain = opened.loc[sample["key"], "id_number"]
    assert len(plain) in (15, 18) and plain[:15].isdigit()
    node = store.get("Resident", sample["key"])
    assert node["id_number"] == plain and "id_number_digest" not in node
    assert store.protector.digest("id_number", plain) == sample["id_number_digest"]


def test_equal_ids_join_by_digest_though_ciphertexts_differ(store: GraphStore) -> None:
    people = store.nodes("Resident", ["id_number"]).dropna(subset=["id_number"])
    shared = people[people["id_number"].duplicated(keep=False)]
    assert len(shared), "the generated province plants records sharing an id number"
    number = shared["id_number"].iat[0]
    holders = set(shared.loc[shared["id_number"] == number, "key"])
    raw = _raw(store, "Resident", ["id_number"]).set_index("key")
    assert len({raw.loc[k, "id_number"] for k in holders}) == len(holders)  # random nonces
    rows = store.query("records_sharing_id_number", residents=sorted(holders))
    assert {r["record"] for r in rows} == holders


def test_practitioner_lookup_by_id_number_opens_the_result(store: GraphStore) -> None:
    staff = store.nodes("Practitioner", ["id_number"]).dropna(subset=["id_number"]).iloc[0]
    rows = store.query("practitioners_by_id_number", id_numbers=[staff["id_number"].lower()])
    assert [(r["practitioner"], r["id_number"]) for r in rows] == [(staff["key"], staff["id_number"])]


def test_a_token_moved_or_altered_fails_to_open(tmp_path: Path, onto: Ontology) -> None:
    protection = _protection(tmp_path / "keys")
    token = protection.seal("Resident.phone", ["13800000000"])[0]
    assert protection.open("Resident.phone", [token]) == ["13800000000"]
    with pytest.raises(DecryptionFailed) as moved:
        protection.open("Practitioner.phone", [token])
    assert moved.value.code == "HG-1104"
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionFailed):
        protection.open("Resident.phone", [altered])


def test_rotation_reseals_every_value_and_keeps_lookups(tmp_path: Path, onto: Ontology) -> None:
    keys = tmp_path / "keys"
    protection = _protection(keys)
    store = open_graph(tmp_path / "g.lbdb", onto=onto, protector=protection)
    try:
        store.upsert_nodes("Resident", _people(30), Provenance("test", "b1"))
        old_key = protection.keyring.active_id
        new_key = protection.keyring.rotate()
        assert store.reseal("Resident") == 60  # 30 id numbers and 30 phones
        raw = _raw(store, "Resident", ["id_number", "phone"])
        assert {FieldCipher.key_id(v) for v in [*raw["id_number"], *raw["phone"]]} == {new_key} != {old_key}
        assert store.reseal("Resident") == 0
        assert store.get("Resident", "T:4")["id_number"] == "110105194912310021"
        rows = store.query("records_sharing_id_number", residents=["T:0"])
        assert {r["record"] for r in rows} == {f"T:{i}" for i in range(0, 30, 3)}
    finally:
        store.close()


def test_values_stored_in_plain_are_sealed_by_reseal(tmp_path: Path, onto: Ontology) -> None:
    plain_store = open_graph(tmp_path / "g.lbdb", onto=onto)
    plain_store.upsert_nodes("Resident", _people(6), Provenance("test", "b1"))
    assert _raw(plain_store, "Resident", ["phone"])["phone"].iat[0] == "13800000000"
    plain_store.close()
    store = open_graph(tmp_path / "g.lbdb", onto=onto, protector=_protection(tmp_path / "keys"))
    try:
        assert store.get("Resident", "T:0")["phone"] == "13800000000"  # readable before resealing
        assert store.reseal("Resident") == 12
        raw = _raw(store, "Resident", ["phone", "phone_digest"])
        assert all(FieldCipher.is_token(v) for v in raw["phone"])
        assert raw["phone_digest"].iat[0] == store.protector.digest("phone", "13800000000")
        assert store.nodes("Resident", ["phone"])["phone"].tolist()[:2] == ["13800000000", "13800000001"]
    finally:
        store.close()


def test_the_digest_key_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "k" / "fields-digest.key"
    first = load_digest_key(path)
    assert len(first) == 32 and load_digest_key(path) == first
    assert path.stat().st_mode & 0o077 == 0


def test_keys_cli_reports_and_rotates(tmp_path: Path, onto: Ontology, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from services.cli import app
    from services.security import iter_events
    from services.settings import Settings

    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    settings = Settings()
    store = settings.open_graph(onto)
    store.upsert_nodes("Resident", _people(9), Provenance("test", "b1"))
    first_key = store.protector.keyring.active_id
    store.close()
    status = CliRunner().invoke(app, ["keys", "status"])
    assert status.exit_code == 0, status.output
    assert first_key in status.output and "Resident.id_number" in status.output
    rotated = CliRunner().invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    store = settings.open_graph(onto)
    try:
        new_key = store.protector.keyring.active_id
        assert new_key != first_key and f"new active key {new_key}" in rotated.output
        assert store.seal_status()["Resident.phone"] == {"values": 9, "stale": 0}
        assert store.get("Resident", "T:8")["phone"] == "13800000008"
    finally:
        store.close()
    rotation, reseal = [e for e in iter_events(settings.audit_path) if e["action"].startswith("keys:")]
    assert (rotation["action"], rotation["previous"], rotation["active"]) == ("keys:rotate", first_key, new_key)
    assert (reseal["action"], reseal["resealed"]["Resident"]) == ("keys:reseal", 18)
    assert rotation["opsig"] and reseal["opsig"]

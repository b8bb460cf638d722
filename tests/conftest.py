"""Shared fixtures: one small generated province, loaded once per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from graph import GraphStore, open_graph
from ingest.load import LoadReport, load_folder
from ingest.synthetic import generate
from ontology.model import Ontology, load_ontology
from services.security.fields import FieldProtection

SMALL = 3_000
SEED = 11


@pytest.fixture(scope="session")
def onto() -> Ontology:
    return load_ontology()


@pytest.fixture(scope="session")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("province") / "p"
    generate(out, residents=SMALL, seed=SEED)
    return out


@pytest.fixture(scope="session")
def truth(province: Path) -> dict:
    return json.loads((province / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def loaded(province: Path, tmp_path_factory: pytest.TempPathFactory, onto: Ontology) -> tuple[GraphStore, LoadReport, Path]:
    data = tmp_path_factory.mktemp("data")
    # As the platform opens it: designated identifiers sealed with SM4-GCM (services/security/fields.py).
    protection = FieldProtection.at(data / "keys" / "fields-sm4.json", data / "keys" / "fields-digest.key")
    store = open_graph(data / "graph.lbdb", onto=onto, protector=protection)
    report = load_folder(store, province, quarantine_root=data / "quarantine")
    yield store, report, data
    store.close()


@pytest.fixture(scope="session")
def store(loaded: tuple[GraphStore, LoadReport, Path]) -> GraphStore:
    return loaded[0]


# ---------------------------------------------------------------- engine servers
# Tests that need Neo4j or OpenSearch get a real server started through services/servers (from
# Maven Central jars), or the one named by HEALTHGRAPH_TEST_NEO4J_URI / _OPENSEARCH_URL. Without
# Java or Maven they skip with the reason; with CI=true that is a failure, as is a server that
# does not start (its log is in the message).

def _engine_server(kind: str, env_var: str, factory: pytest.TempPathFactory, heap_mib: int | None = None):
    from services import servers
    from ontology.errors import ServerUnavailable

    if os.environ.get(env_var):
        yield os.environ[env_var]
        return
    missing = servers.requirements(kind)
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    home = factory.mktemp(kind)
    try:
        server = servers.start(kind, home, port=servers.free_port(kind, 0 if kind == "neo4j" else None), heap_mib=heap_mib)
    except ServerUnavailable as exc:
        pytest.fail(f"{kind} server did not start: {exc}", pytrace=False)
    try:
        yield server.url
    finally:
        servers.stop(kind, home)


@pytest.fixture(scope="session")
def neo4j_url(tmp_path_factory: pytest.TempPathFactory):
    """Bolt URI of a real Neo4j 5.26 server for this test session."""
    yield from _engine_server("neo4j", "HEALTHGRAPH_TEST_NEO4J_URI", tmp_path_factory)


@pytest.fixture(scope="session")
def neo4j_scratch_url(tmp_path_factory: pytest.TempPathFactory):
    """A second, empty Neo4j server for tests that write (the loaded one stays as loaded)."""
    yield from _engine_server("neo4j", "HEALTHGRAPH_TEST_NEO4J_SCRATCH_URI", tmp_path_factory, heap_mib=512)


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory: pytest.TempPathFactory):
    """HTTP URL of a real OpenSearch 2.19 node for this test session."""
    yield from _engine_server("opensearch", "HEALTHGRAPH_TEST_OPENSEARCH_URL", tmp_path_factory)


@pytest.fixture(scope="session")
def query_args(truth: dict, province: Path) -> dict[str, dict]:
    """Arguments for every named query in the catalog, taken from the generated province."""
    import pandas as pd

    enc = pd.read_parquet(province / "edges" / "of_patient.parquet").query("src_class == 'OutpatientEncounter'").iloc[0]
    inst = pd.read_parquet(province / "nodes" / "Institution.parquet").iloc[0]
    donations = pd.read_parquet(province / "edges" / "of_patient.parquet").query("src_class == 'BloodDonation'")
    donor = donations.set_index("src").loc[truth["positive_donor"]["donations"][0], "dst"]
    of_unit = pd.read_parquet(province / "edges" / "of_unit.parquet")
    transfusion = of_unit.set_index("dst").loc[truth["positive_donor"]["transfused_units"][0], "src"]
    of_patient = pd.read_parquet(province / "edges" / "of_patient.parquet")
    recipient = of_patient.set_index("src").loc[transfusion, "dst"]
    records = pd.read_parquet(province / "truth" / "person_records.parquet")
    cases = sorted(records[records["person"].isin(truth["outbreak"]["cases"])]["key"])
    window = {"since": "2025-01-01T00:00:00", "until": "2026-01-01T00:00:00"}
    employer = pd.read_parquet(province / "edges" / "employed_by.parquet")["dst"].value_counts().index[0]
    held = pd.read_parquet(province / "edges" / "holds_license.parquet")
    physician = held[held["dst_class"] == "PracticeLicense"].iloc[0]
    licensed_inst = held[held["dst_class"] == "InstitutionLicense"].iloc[0]["src"]
    registered_at = pd.read_parquet(province / "edges" / "registered_at.parquet")["dst"].value_counts().index[0]
    staff_ids = pd.read_parquet(province / "nodes" / "Practitioner.parquet")["id_number"].dropna()

    def related(edge: str) -> tuple[list[str], list[str]]:
        """Diseases with this knowledge relation, and their targets (the province carries the built-in KB)."""
        pairs = pd.read_parquet(province / "edges" / f"{edge}.parquet").head(3)
        return sorted(set(pairs["src"])), sorted(set(pairs["dst"]))

    with_symptoms, symptoms = related("has_symptom")
    with_drugs, drugs = related("treated_with")
    with_checks, checks = related("checked_by")
    with_good, good = related("good_food")
    with_avoid, avoid = related("avoid_food")
    with_complications, _ = related("complication")
    with_articles = sorted(set(pd.read_parquet(province / "edges" / "about.parquet")["dst"].head(3)))
    subjects = sorted(set(pd.read_parquet(province / "nodes" / "Department.parquet")["subject_code"]))[:3]
    return {
        "institutions_in_division": {"division_code": inst["division_code"], "cls": "Institution"},
        "encounters_of_resident": {"resident_key": enc["dst"]},
        "institutions_visited": {"resident_key": enc["dst"]},
        "residents_in_division": {"code_prefix": "33"},
        "practitioners_of_institution": {"institution_key": employer},
        "diagnoses_by_code_prefix": {"prefix": "J"},
        "recipients_of_donor": {"donor_key": donor},
        "donor_of_donation": {"din": truth["positive_donor"]["reactive_donation"]},
        "donations_of_donor": {"donor_key": donor},
        "units_made_from": {"din": truth["positive_donor"]["donations"][0]},
        "unit_whereabouts": {"unit": truth["positive_donor"]["transfused_units"][0]},
        "transfusions_of_recipient": {"recipient_key": recipient},
        "cases_by_diagnosis": {"icd10": truth["outbreak"]["icd10"], **window},
        "case_places": {"icd10": truth["outbreak"]["icd10"], **window},
        "records_sharing_id_number": {"residents": cases[:10]},
        "exposures_of_residents": {"residents": cases},
        "exposures_to_lots": {"lots": [truth["outbreak"]["source_lot"]]},
        "samples_of_lots": {"lots": [truth["outbreak"]["source_lot"]]},
        "food_deliveries": window,
        "food_lots": {},
        "adverse_events_by_lot": {},
        "repeated_trace_codes": {},
        "blood_inventory": {},
        "blood_stock_levels": {},
        "transfusion_reactions": {},
        "units_of_donation": {"din": truth["positive_donor"]["donations"][0]},
        "vaccinations_of_lot": {"lot": truth["aefi_cluster"]["lot"]},
        "deliveries_of_lot": {"lot": truth["outbreak"]["source_lot"]},
        "practitioner_licences": {"code": physician["src"]},
        "licence_holders": {"licences": held[held["dst_class"] == "PracticeLicense"]["dst"].head(5).tolist()},
        "practitioners_by_id_number": {"id_numbers": staff_ids.head(5).tolist()},
        "institution_licences": {"uscc": licensed_inst},
        "registered_practitioners": {"uscc": registered_at},
        # supervision rules (rules/packs/core.yaml): candidate rows over the whole graph
        "encounter_practice": {},
        "prescription_items_review": {},
        "prescription_sizes": {},
        "prescription_drug_pairs": {},
        "notifiable_diagnoses": {},
        "appointment_behaviour": {},
        "reactions_by_donor": {},
        "vaccinations_with_lots": {},
        "master_index_links": {},
        # medical knowledge: triage, question answering and doctor recommendation
        "knowledge_conditions": {},
        "knowledge_condition_symptoms": {},
        "knowledge_terms": {},
        "disease_facts": {"diseases": with_symptoms},
        "drug_facts": {"drugs": drugs or ["amoxicillin"]},
        "disease_symptoms": {"diseases": with_symptoms},
        "disease_drugs": {"diseases": with_drugs},
        "disease_checks": {"diseases": with_checks},
        "disease_good_foods": {"diseases": with_good},
        "disease_avoid_foods": {"diseases": with_avoid},
        "disease_complications": {"diseases": with_complications},
        "symptom_diseases": {"terms": symptoms},
        "drug_diseases": {"terms": drugs},
        "check_diseases": {"terms": checks},
        "food_good_for": {"terms": good},
        "food_avoid_for": {"terms": avoid},
        "articles_about": {"diseases": with_articles},
        "practitioners_for_subjects": {"subjects": subjects},
        "practitioner_visits": {"practitioners": pd.read_parquet(province / "edges" / "attended_by.parquet")[
            "dst"].head(5).tolist()},
        "division_institution_places": {"code_prefix": str(inst["division_code"])[:4]},
    }


PYCANON_PYTHON = Path(os.environ.get("HEALTHGRAPH_PYCANON_PYTHON",
                                     Path(__file__).resolve().parents[1] / ".venv-pycanon" / "bin" / "python"))
_PYCANON_SCRIPT = """
import json, sys
import pandas as pd
from pycanon import anonymity as a
frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
quasi, sensitive = json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {"k": int(a.k_anonymity(frame, quasi))}
if sensitive:
    out["l_entropy"] = float(a.entropy_l_diversity(frame, quasi, sensitive))
    out["t"] = float(a.t_closeness(frame, quasi, sensitive))
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def pycanon(tmp_path_factory: pytest.TempPathFactory):
    """pycanon's measures of a released table, computed in its own venv (`make test` makes .venv-pycanon):
    its wheel pins numpy 2.0 and older scipy, which cannot share the project's environment."""
    import json
    import subprocess

    if not PYCANON_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {PYCANON_PYTHON} is missing: `make test` creates it", pytrace=False)
        pytest.skip(f"pycanon's venv {PYCANON_PYTHON} is missing (run `make test` to create it)")
    folder = tmp_path_factory.mktemp("pycanon")

    def measure(frame: Any, quasi: list[str], sensitive: list[str] | None = None) -> dict[str, float]:
        path = folder / "released.csv"
        frame.astype(str).to_csv(path, index=False)
        done = subprocess.run([str(PYCANON_PYTHON), "-c", _PYCANON_SCRIPT, str(path), json.dumps(quasi),
                               json.dumps(sensitive or [])], capture_output=True, text=True, timeout=600, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    return measure

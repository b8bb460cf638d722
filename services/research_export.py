"""科研数据导出 The anonymised research graph: what a researcher may take away from the platform.

``export_research`` reads residents, encounters, diagnoses, institutions and divisions from the graph and writes a
folder with no name, id number, phone, address, original key or exact date in it:

- residents (one per master person when the master index is built, else one per source record), encounters and
  diagnoses under keyed pseudonyms (HMAC-SM3 with the caller's key, 16 hex digits); residents' quasi-identifiers
  generalised (age band at the as-of date, sex, county), encounter dates as months, diagnoses as ICD-10 chapter and
  3-character category only;
- every diagnosis under one of the ontology's sensitivity labels (HIV, psychiatric, sexually transmitted) removed;
- the resident table k-anonymous and entropy-ℓ-diverse in the primary diagnosis chapter (the exact lattice search
  of ``services.anonymity``), verified again from the written file;
- aggregates with small cells marked, and OpenDP discrete-Laplace counts;
- Parquet tables, a GraphML graph, report.json / report.md and a manifest of SHA-256 digests signed with SM2.

    key = secrets.token_bytes(32)       # keep it secret and keep it: the same key gives the same pseudonyms
    report = export_research(store, "research", key=key, k=5, l=2, epsilon=1.0, signer=SM2KeyPair.load(pem))
    verify_export("research", signer.public_key())      # raises ExportTampered (HG-1208) on any change

See docs/research.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from graph import GraphStore
from services.anonymity import (
    EntropyLDiversity,
    Hierarchy,
    KAnonymity,
    PrivacyModel,
    anonymize,
    division_hierarchy,
    suppression_hierarchy,
    verify,
)
from services.anonymity.errors import ExportTampered, InvalidConfiguration, NothingToExport, VerificationFailed
from services.security import SM2KeyPair, hmac_sm3

FORMAT = "healthgraph-research-export/1"
TABLES = ("residents", "encounters", "diagnoses", "institutions", "divisions", "edges", "aggregates")
GRAPHML = "research.graphml"
DATA_FILES = (*(f"{table}.parquet" for table in TABLES), GRAPHML)
REPORT_FILES = ("report.json", "report.md")
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"

QUASI_IDENTIFIERS = ("age_band", "sex", "county")
SENSITIVE = "primary_chapter"
NO_DIAGNOSIS = "none"
PSEUDONYM_DIGITS = 16
SEXES = ("1", "2", "9")
"""GB/T 2261.1: 1 male, 2 female; 0 (unknown) and anything else are published as 9 (unspecified)."""

# ICD-10 chapters (WHO 2019) by their first and last 3-character category.
CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("I", "A00", "B99"), ("II", "C00", "D48"), ("III", "D50", "D89"), ("IV", "E00", "E90"), ("V", "F00", "F99"),
    ("VI", "G00", "G99"), ("VII", "H00", "H59"), ("VIII", "H60", "H95"), ("IX", "I00", "I99"), ("X", "J00", "J99"),
    ("XI", "K00", "K93"), ("XII", "L00", "L99"), ("XIII", "M00", "M99"), ("XIV", "N00", "N99"),
    ("XV", "O00", "O99"), ("XVI", "P00", "P96"), ("XVII", "Q00", "Q99"), ("XVIII", "R00", "R99"),
    ("XIX", "S00", "T98"), ("XX", "V01", "Y98"), ("XXI", "Z00", "Z99"), ("XXII", "U00", "U99"),
)
_BY_START = sorted(CHAPTERS, key=lambda chapter: chapter[1])
_STARTS = [chapter[1] for chapter in _BY_START]
_CHAPTER_RANK = {chapter[0]: rank for rank, chapter in enumerate(CHAPTERS)}
_CATEGORY = re.compile(r"[A-Z][0-9]{2}")

AGE_TOP = 90
AGE_BANDS = tuple(f"{low}-{low + 4}" for low in range(0, AGE_TOP, 5)) + (f"{AGE_TOP}+",)
LEVEL_NAMES = {
    "age_band": ("5-year band", "10-year band", "20-year band", "*"),
    "sex": ("sex", "*"),
    "county": ("county", "prefecture", "province", "*"),
}

PRIMARY_CARE = ("CommunityHealthCenter", "TownshipHealthCenter")


def pseudonym(key: bytes, original: str) -> str:
    """The research id of an original key: HMAC-SM3(key, original) in hex, its first 16 digits (64 bits).

    Without the key nobody can compute it from the original key or back; with it the data steward can re-link."""
    return hmac_sm3(key, original.encode("utf-8")).hex()[:PSEUDONYM_DIGITS]


def icd10_category(code: object) -> str | None:
    """The 3-character category of an ICD-10 code (``J06.9`` → ``J06``), None when it is not one."""
    if not isinstance(code, str):
        return None
    category = re.sub(r"[^A-Z0-9]", "", code.upper())[:3]
    return category if _CATEGORY.fullmatch(category) else None


def icd10_chapter(category: str | None) -> str | None:
    """The chapter (Roman numeral) of a 3-character category: ``J06`` → ``X``; None outside every chapter."""
    if category is None:
        return None
    i = bisect_right(_STARTS, category) - 1
    if i < 0:
        return None
    numeral, _, last = _BY_START[i]
    return numeral if category <= last else None


def age_band(age: int) -> str:
    """Five-year band, top-coded: 37 → ``35-39``, 93 → ``90+``."""
    low = min(age // 5 * 5, AGE_TOP)
    return f"{AGE_TOP}+" if low >= AGE_TOP else f"{low}-{low + 4}"


def _wider(band: str, width: int, top: int) -> str:
    low = int(band.rstrip("+").split("-")[0])
    if low >= top:
        return f"{top}+"
    low = low // width * width
    return f"{low}-{low + width - 1}"


def age_hierarchy(bands: Iterable[str]) -> Hierarchy:
    """5-year band → 10-year band (``90+`` stays) → 20-year band (``80+``) → ``*``."""
    return Hierarchy.from_functions(bands, [lambda b: _wider(str(b), 10, AGE_TOP), lambda b: _wider(str(b), 20, 80)],
                                    name="age_band")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and guaranteed; ``document`` is report.json."""

    out: Path
    as_of: dt.date
    rows: dict[str, int]
    levels: dict[str, int]
    loss: float
    relative_loss: float
    suppressed: int
    max_suppressed: int
    restricted_removed: int
    small_cells: int
    epsilon: float
    achieved_k: int
    achieved_l: float
    files: dict[str, str]
    """File name → SHA-256 (hex) of every data file."""
    signed_by: str | None
    seconds: float
    document: dict[str, Any]


@dataclass(frozen=True)
class ExportVerification:
    files: int
    signed_by: str | None
    """The SM2 key id the manifest's signature verified under (None when no key was given)."""
    unlisted: tuple[str, ...]
    """Files in the folder the manifest does not cover (e.g. a notebook's figures): not checked."""


def export_research(store: GraphStore, out_dir: str | Path, *, key: bytes, k: int = 5, l: float = 2,  # noqa: E741
                    suppression: float = 0.02, epsilon: float = 1.0, small_cell: int = 10,
                    signer: SM2KeyPair | None = None, since: dt.date | str | None = None,
                    until: dt.date | str | None = None, as_of: dt.date | str | None = None,
                    progress: bool = True) -> ExportReport:
    """Write the anonymised research graph of ``store`` to ``out_dir`` and return what it guarantees.

    ``key`` (≥ 16 bytes, never written anywhere) keys the pseudonyms: the same key gives the same ids in every
    export. ``k``/``l`` are the k-anonymity and entropy-ℓ-diversity (on the primary diagnosis chapter) the
    resident table must meet, ``suppression`` the largest fraction of residents that may be withheld to get there.
    ``epsilon`` is the differential-privacy budget of each published count (sensitivity 1 per person per cell),
    ``small_cell`` the smallest exact count published. ``since``/``until`` bound the encounters (until is
    exclusive); ages are taken at ``as_of`` (default: the day of the latest exported encounter). With ``signer``
    the manifest is signed (SM2); check a folder with :func:`verify_export`.

    Raises InvalidConfiguration (HG-1205) for bad parameters, NoSolution (HG-1206) when k/ℓ cannot be met within
    the suppression limit, NothingToExport (HG-1209) for an empty graph or window.
    """
    started = time.perf_counter()
    _check_parameters(key, k, l, suppression, epsilon, small_cell, signer)
    out = Path(out_dir)
    window = (_timestamp(since, "since"), _timestamp(until, "until"))
    with _steps(progress) as step:
        with step("读取图谱 reading the graph"):
            source = _read(store, *window)
        with step("去标识 pseudonyms, restricted diagnoses, quasi-identifiers"):
            prepared = _prepare(store, source, key, _date(as_of, "as_of"))
        with step("匿名化 k-anonymity and ℓ-diversity (exact lattice search)"):
            models: list[PrivacyModel] = [KAnonymity(k), EntropyLDiversity(SENSITIVE, l)]
            hierarchies = {"age_band": age_hierarchy(prepared.people["age_band"]),
                           "sex": suppression_hierarchy(prepared.people["sex"], name="sex"),
                           "county": division_hierarchy(prepared.people["county"], name="county")}
            result = anonymize(prepared.people, hierarchies, models, suppression_limit=suppression)
            graph = _release(prepared, source, result.data)
        with step("聚合与差分隐私 aggregates, small cells, OpenDP noise"):
            aggregates, dp_report = _aggregates(prepared, source, window, epsilon, small_cell)
        with step("写出 Parquet, GraphML"):
            out.mkdir(parents=True, exist_ok=True)
            for stale in (MANIFEST, SIGNATURE):  # an interrupted export must not verify
                (out / stale).unlink(missing_ok=True)
            tables = {**graph, "aggregates": aggregates}
            for table in TABLES:
                tables[table].to_parquet(out / f"{table}.parquet", index=False)
            nx.write_graphml(_graphml(tables), out / GRAPHML)
        with step("独立校验 verifying the written resident table"):
            written = pd.read_parquet(out / "residents.parquet")
            check = verify(prepared.people, written, result.suppressed_rows.to_numpy(), hierarchies, result.levels,
                           models, result.max_suppressed)
            if not check.ok:
                raise VerificationFailed(f"匿名结果校验未通过 the written resident table failed verification: "
                                         f"{'; '.join(check.problems)}", problems=list(check.problems))
        with step("报告与签名 report, manifest, signature"):
            files = {name: _digest(out / name) for name in DATA_FILES}
            document = _document(
                prepared=prepared, source=source, result=result, check=check, models=models, window=window,
                parameters={"k": k, "l": l, "suppression": suppression, "epsilon": epsilon, "small_cell": small_cell},
                aggregates=aggregates, dp_report=dp_report, tables=tables, files=files, signer=signer,
                key_id=pseudonym(key, "healthgraph-research-key-id"),
            )
            (out / "report.json").write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
            (out / "report.md").write_text(_markdown(document), encoding="utf-8")
            _write_manifest(out, signer)
    achieved = document["verification"]
    return ExportReport(
        out=out, as_of=prepared.as_of, rows=document["rows"], levels=dict(result.levels), loss=result.loss,
        relative_loss=result.relative_loss, suppressed=result.suppressed, max_suppressed=result.max_suppressed,
        restricted_removed=document["restricted"]["diagnoses_removed"],
        small_cells=int(aggregates["small_cell"].sum()), epsilon=epsilon, achieved_k=achieved["k"],
        achieved_l=achieved["l_entropy"], files={name: entry["sha256"] for name, entry in files.items()},
        signed_by=signer.key_id if signer else None, seconds=time.perf_counter() - started, document=document,
    )


def verify_export(folder: str | Path, public_key: SM2KeyPair | str | Path | None) -> ExportVerification:
    """Check an export folder: the manifest's SM2 signature under ``public_key`` (a key, PEM text, a PEM file or
    the public key in hex) and the SHA-256 of every file it lists. ``public_key=None`` checks the digests only,
    which proves nothing about who wrote them. Raises ExportTampered (HG-1208) with ``details["kind"]``."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportTampered(f"缺少清单 no {MANIFEST} in {folder}: not an export, or an interrupted one",
                             kind="missing", file=MANIFEST)
    raw = path.read_bytes()
    signed_by = None
    if public_key is not None:
        verifier = _public_key(public_key)
        signature = folder / SIGNATURE
        if not signature.is_file():
            raise ExportTampered(f"清单未签名 the manifest of {folder} is not signed (no {SIGNATURE})",
                                 kind="unsigned", file=SIGNATURE)
        try:
            der = bytes.fromhex(signature.read_text(encoding="ascii").strip())
        except ValueError:
            der = b""
        if not der or not verifier.verify(raw, der):
            raise ExportTampered(f"签名无效 the manifest's signature does not verify under key {verifier.key_id}",
                                 kind="signature", file=MANIFEST, key_id=verifier.key_id)
        signed_by = verifier.key_id
    try:
        listed = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError):
        raise ExportTampered(f"清单无法读取 {MANIFEST} is not a manifest", kind="manifest", file=MANIFEST) from None
    absent = [name for name in (*DATA_FILES, *REPORT_FILES) if name not in listed]
    if absent:
        raise ExportTampered(f"清单缺少文件 the manifest omits {', '.join(absent)}", kind="manifest", file=absent[0])
    for name, entry in sorted(listed.items()):
        target = folder / name
        if Path(name).name != name or not target.is_file():
            raise ExportTampered(f"文件缺失 {name} is missing from {folder}", kind="missing", file=name)
        if _digest(target) != entry:
            raise ExportTampered(f"文件已被修改 {name} changed after the export was written", kind="modified",
                                 file=name)
    unlisted = tuple(sorted(p.name for p in folder.iterdir() if p.name not in listed
                            and p.name not in (MANIFEST, SIGNATURE)))
    return ExportVerification(files=len(listed), signed_by=signed_by, unlisted=unlisted)


# ---------------------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Source:
    persons: pd.DataFrame
    """person (the master key, or the record key of records outside the index), sex, birth_date, division_code."""
    person_of: pd.Series
    """Resident record key → person key."""
    from_index: int
    """Persons that are master persons."""
    encounters: pd.DataFrame
    """key, class, when (Timestamp), record, institution — those in the window with a patient and a date."""
    diagnoses: pd.DataFrame
    """key, encounter, icd10_code, is_primary — those of the encounters above."""
    incomplete_encounters: int
    institutions: pd.DataFrame
    """Health-care institutions (any class under HealthcareInstitution) with their county."""
    divisions: pd.DataFrame


def _read(store: GraphStore, since: pd.Timestamp | None, until: pd.Timestamp | None) -> _Source:
    records = store.nodes("Resident", ["sex", "birth_date", "division_code"])
    links = store.nodes("PersonLink", ["state"])
    matched = set(links.loc[links["state"] == "MATCH", "key"])
    masters = store.nodes("MasterPerson", ["sex", "birth_date", "division_code"])
    master_of = pd.Series(dtype=object)
    if matched and len(masters):
        pairs = _pairs(store, "link_record", "PersonLink", "Resident").merge(
            _pairs(store, "link_master", "PersonLink", "MasterPerson"), on="src", suffixes=("_record", "_master"))
        pairs = pairs[pairs["src"].isin(matched) & pairs["dst_master"].isin(set(masters["key"]))]
        pairs = pairs.sort_values(["dst_record", "dst_master"]).drop_duplicates("dst_record")
        master_of = pd.Series(pairs["dst_master"].to_numpy(dtype=object), index=pairs["dst_record"].to_numpy(dtype=object))
    person_of = records["key"].map(master_of).fillna(records["key"])
    person_of.index = records["key"].to_numpy(dtype=object)
    columns = ["key", "sex", "birth_date", "division_code"]
    persons = pd.concat([masters.loc[masters["key"].isin(set(master_of)), columns],
                         records.loc[~records["key"].isin(master_of.index), columns]], ignore_index=True)
    persons = persons.rename(columns={"key": "person"})

    encounters = store.nodes("Encounter", ["occurred_at"])
    encounters["when"] = pd.to_datetime(encounters["occurred_at"], errors="coerce")
    encounters["record"] = encounters["key"].map(_first(_pairs(store, "of_patient", "Encounter", "Resident")))
    encounters["institution"] = encounters["key"].map(
        _first(_pairs(store, "at_institution", "Encounter", "Institution")))
    complete = encounters["record"].notna() & encounters["when"].notna()
    in_window = complete.copy()
    if since is not None:
        in_window &= encounters["when"] >= since
    if until is not None:
        in_window &= encounters["when"] < until
    kept = encounters.loc[in_window, ["key", "class", "when", "record", "institution"]].reset_index(drop=True)

    diagnoses = store.nodes("Diagnosis", ["icd10_code", "is_primary"])
    diagnoses["encounter"] = diagnoses["key"].map(_first(_pairs(store, "in_encounter", "Diagnosis", "Encounter")))
    diagnoses = diagnoses[diagnoses["encounter"].isin(set(kept["key"]))].reset_index(drop=True)

    institutions = store.nodes("Institution", ["uscc", "name", "grade", "division_code"])
    located = institutions["key"].map(_first(_pairs(store, "located_in", "Institution", "Division")))
    institutions["county"] = located.fillna(institutions["division_code"])
    visited = set(kept["institution"].dropna())
    healthcare = store.onto.descendants("HealthcareInstitution")
    institutions = institutions[institutions["class"].isin(healthcare) | institutions["key"].isin(visited)]
    divisions = store.nodes("Division", ["code", "level", "name"])
    divisions["parent"] = divisions["key"].map(_first(_pairs(store, "within", "Division", "Division")))
    return _Source(persons=persons, person_of=person_of, from_index=int(masters["key"].isin(set(master_of)).sum()),
                   encounters=kept, diagnoses=diagnoses, incomplete_encounters=int((~complete).sum()),
                   institutions=institutions, divisions=divisions)


def _pairs(store: GraphStore, edge: str, src: str, dst: str) -> pd.DataFrame:
    return store.edge_pairs(edge, src, dst).astype(object)


def _first(pairs: pd.DataFrame) -> pd.Series:
    """src → dst, the smallest dst when a source has several."""
    pairs = pairs.sort_values(["src", "dst"]).drop_duplicates("src")
    return pd.Series(pairs["dst"].to_numpy(dtype=object), index=pairs["src"].to_numpy(dtype=object))


# ------------------------------------------------------------------------------------------------------- preparing


@dataclass(frozen=True)
class _Prepared:
    as_of: dt.date
    people: pd.DataFrame
    """The table to anonymise, ordered by pseudonym: resident, age_band, sex, county, primary_chapter."""
    encounters: pd.DataFrame
    """encounter, resident, institution, class, month — of included persons, restricted-only ones removed."""
    diagnoses: pd.DataFrame
    """diagnosis, encounter, resident, chapter, category, is_primary, month — no restricted one."""
    excluded_persons: int
    restricted: dict[str, int]
    restricted_encounters: int
    uncodable: int
    withheld_chapters: tuple[str, ...]


def _prepare(store: GraphStore, source: _Source, key: bytes, as_of: dt.date | None) -> _Prepared:
    encounters, diagnoses = source.encounters, source.diagnoses
    patterns = {name: re.compile(label.icd10_pattern) for name, label in sorted(store.onto.sensitivity_labels.items())}
    codes = diagnoses["icd10_code"].map(lambda c: c.strip().upper() if isinstance(c, str) else "")
    label = pd.Series(None, index=diagnoses.index, dtype=object)
    for name, pattern in patterns.items():
        label = label.where(label.notna() | ~codes.map(lambda c, p=pattern: bool(p.fullmatch(c))), name)
    restricted = label.notna()
    diagnoses = diagnoses.assign(category=codes.map(icd10_category))
    diagnoses["chapter"] = diagnoses["category"].map(icd10_chapter)
    uncodable = ~restricted & diagnoses["chapter"].isna()
    # A visit whose every diagnosis was restricted would stand out as a visit without one: it goes too.
    only_restricted = set(diagnoses.loc[restricted, "encounter"]) - set(diagnoses.loc[~restricted, "encounter"])
    diagnoses = diagnoses[~restricted & ~uncodable]
    encounters = encounters[~encounters["key"].isin(only_restricted)].copy()

    if as_of is None:
        as_of = encounters["when"].max().date() if len(encounters) else dt.date.today()
    persons = source.persons.copy()
    born = pd.to_datetime(persons["birth_date"], errors="coerce")
    before_birthday = (born.dt.month > as_of.month) | ((born.dt.month == as_of.month) & (born.dt.day > as_of.day))
    age = as_of.year - born.dt.year - before_birthday.astype(int)
    county = persons["division_code"].astype("string").str.strip()
    valid = born.notna() & (age >= 0) & county.str.fullmatch(r"\d{6}").fillna(False).astype(bool)
    persons = persons[valid].assign(age_band=age[valid].astype(int).map(age_band), county=county[valid].astype(str),
                                    sex=persons.loc[valid, "sex"].map(lambda s: s if s in SEXES else "9"))
    if persons.empty:
        raise NothingToExport("没有可导出的居民 no resident with a birth date and a county to export",
                              persons=len(source.persons))
    persons["resident"] = [pseudonym(key, p) for p in persons["person"]]
    _unique(persons["resident"], "residents")
    person_ids = pd.Series(persons["resident"].to_numpy(), index=persons["person"].to_numpy())

    encounters["resident"] = encounters["record"].map(source.person_of).map(person_ids)
    encounters = encounters[encounters["resident"].notna()].copy()
    encounters["encounter"] = [pseudonym(key, e) for e in encounters["key"]]
    _unique(encounters["encounter"], "encounters")
    encounters["month"] = encounters["when"].dt.strftime("%Y-%m")
    encounter_ids = pd.Series(encounters["encounter"].to_numpy(), index=encounters["key"].to_numpy())

    diagnoses = diagnoses[diagnoses["encounter"].isin(encounter_ids.index)].copy()
    diagnoses["diagnosis"] = [pseudonym(key, d) for d in diagnoses["key"]]
    _unique(diagnoses["diagnosis"], "diagnoses")
    diagnoses["encounter"] = diagnoses["encounter"].map(encounter_ids)
    diagnoses = diagnoses.merge(encounters[["encounter", "resident", "month"]], on="encounter")
    diagnoses["is_primary"] = diagnoses["is_primary"].map(lambda v: v is not None and bool(v))

    # A resident's primary chapter: the chapter of their most frequent primary diagnosis (ties: the lower chapter).
    primary = diagnoses[diagnoses["is_primary"]].groupby(["resident", "chapter"]).size().rename("n").reset_index()
    primary["rank"] = primary["chapter"].map(_CHAPTER_RANK)
    primary = primary.sort_values(["resident", "n", "rank"], ascending=[True, False, True]).drop_duplicates("resident")
    persons[SENSITIVE] = persons["resident"].map(primary.set_index("resident")["chapter"]).fillna(NO_DIAGNOSIS)

    people = persons[["resident", *QUASI_IDENTIFIERS, SENSITIVE]].sort_values("resident").reset_index(drop=True)
    return _Prepared(
        as_of=as_of, people=people,
        encounters=encounters[["encounter", "resident", "institution", "class", "month"]].reset_index(drop=True),
        diagnoses=diagnoses[["diagnosis", "encounter", "resident", "chapter", "category", "is_primary", "month"]],
        excluded_persons=int((~valid).sum()), restricted=label[restricted].value_counts().sort_index().to_dict(),
        restricted_encounters=len(only_restricted), uncodable=int(uncodable.sum()),
        withheld_chapters=_withheld_chapters(list(patterns.values())),
    )


def _withheld_chapters(patterns: list[re.Pattern[str]]) -> tuple[str, ...]:
    """Chapters every category of which is restricted (V, mental disorders): not published even as zero counts."""
    withheld = []
    for numeral, first, last in CHAPTERS:
        categories = [f"{letter}{n:02d}" for letter in map(chr, range(ord(first[0]), ord(last[0]) + 1))
                      for n in range(100) if first <= f"{letter}{n:02d}" <= last]
        if all(any(p.fullmatch(c) for p in patterns) for c in categories):
            withheld.append(numeral)
    return tuple(withheld)


def _unique(ids: pd.Series, what: str) -> None:
    if ids.duplicated().any():
        raise InvalidConfiguration(f"假名冲突 two {what} share a pseudonym under this key (a 64-bit collision): "
                                   f"export with another key", table=what)


# --------------------------------------------------------------------------------------------------------- release


def _release(prepared: _Prepared, source: _Source, released: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The published tables: suppressed residents leave with their encounters and diagnoses."""
    residents = released.reset_index(drop=True)
    kept = set(residents["resident"])
    encounters = prepared.encounters[prepared.encounters["resident"].isin(kept)]
    encounters = encounters.sort_values("encounter").reset_index(drop=True)
    diagnoses = prepared.diagnoses[prepared.diagnoses["resident"].isin(kept)]
    diagnoses = diagnoses[["diagnosis", "encounter", "chapter", "category", "is_primary"]]
    diagnoses = diagnoses.sort_values("diagnosis").reset_index(drop=True)

    institutions = source.institutions.assign(institution=lambda f: f["uscc"].fillna(f["key"]))
    ids = pd.Series(institutions["institution"].to_numpy(), index=institutions["key"].to_numpy())
    encounters["institution"] = encounters["institution"].map(ids)
    institutions = institutions[["institution", "name", "class", "grade", "county"]]
    institutions = institutions.sort_values("institution").reset_index(drop=True)
    divisions = source.divisions.assign(division=lambda f: f["code"].fillna(f["key"]))
    divisions = divisions[["division", "name", "level", "parent"]].sort_values("division").reset_index(drop=True)

    known = set(divisions["division"])
    edges = pd.concat([
        _edges("of_patient", "encounter", encounters["encounter"], "resident", encounters["resident"]),
        _edges("at_institution", "encounter", encounters["encounter"], "institution", encounters["institution"]),
        _edges("in_encounter", "diagnosis", diagnoses["diagnosis"], "encounter", diagnoses["encounter"]),
        _edges("resides_in", "resident", residents["resident"], "division",
               residents["county"].where(residents["county"].isin(known))),
        _edges("located_in", "institution", institutions["institution"], "division",
               institutions["county"].where(institutions["county"].isin(known))),
        _edges("within", "division", divisions["division"], "division",
               divisions["parent"].where(divisions["parent"].isin(known))),
    ], ignore_index=True)
    return {"residents": residents, "encounters": encounters, "diagnoses": diagnoses, "institutions": institutions,
            "divisions": divisions, "edges": edges}


def _edges(edge: str, src_kind: str, src: pd.Series, dst_kind: str, dst: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame({"type": edge, "src_kind": src_kind, "src": src.to_numpy(dtype=object),
                          "dst_kind": dst_kind, "dst": dst.to_numpy(dtype=object)})
    return frame[frame["dst"].notna()].sort_values(["src", "dst"])


def _graphml(tables: dict[str, pd.DataFrame]) -> nx.DiGraph:
    """The same graph as the tables; node ids are ``kind:id`` and every node carries its ``kind`` and ``id``."""
    graph = nx.DiGraph(format=FORMAT)
    # Foreign-key columns of the tables are edges here.
    for kind, table, skip in (("division", "divisions", {"parent"}), ("institution", "institutions", set()),
                              ("resident", "residents", set()), ("encounter", "encounters", {"resident", "institution"}),
                              ("diagnosis", "diagnoses", {"encounter"})):
        for row in tables[table].to_dict("records"):
            attributes = {name: _graph_value(value) for name, value in row.items()
                          if name != kind and name not in skip and _graph_value(value) is not None}
            graph.add_node(f"{kind}:{row[kind]}", kind=kind, id=row[kind], **attributes)
    for row in tables["edges"].itertuples(index=False):
        graph.add_edge(f"{row.src_kind}:{row.src}", f"{row.dst_kind}:{row.dst}", type=row.type)
    return graph


def _graph_value(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------------------------ aggregates


def _aggregates(prepared: _Prepared, source: _Source, window: tuple[pd.Timestamp | None, pd.Timestamp | None],
                epsilon: float, small_cell: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Residents per (county, age band, sex) and persons diagnosed per (prefecture, chapter, month), over every
    cell of a fixed domain (so that an empty cell is published like any other): exact counts below
    ``small_cell`` withheld and marked, and a discrete-Laplace count for every cell."""
    people = prepared.people
    divisions = source.divisions
    counties = sorted(set(divisions.loc[divisions["level"] == "county", "key"]) | set(people["county"]))
    residents = people.groupby(["county", "age_band", "sex"]).size().reindex(
        pd.MultiIndex.from_product([counties, AGE_BANDS, SEXES], names=["county", "age_band", "sex"]), fill_value=0)
    residents = residents.rename("count").reset_index()
    residents.insert(1, "prefecture", residents["county"].str[:4] + "00")

    diagnoses = prepared.diagnoses.assign(prefecture=lambda f: f["resident"].map(
        people.set_index("resident")["county"]).str[:4] + "00")
    # A person counts once per cell however many diagnoses they had in it: the sensitivity is then 1 per cell.
    cells = diagnoses.drop_duplicates(["resident", "prefecture", "chapter", "month"])
    max_cells = int(cells.groupby("resident").size().max()) if len(cells) else 0
    prefectures = sorted(set(divisions.loc[divisions["level"] == "prefecture", "key"]) | set(cells["prefecture"]))
    chapters = [numeral for numeral, _, _ in CHAPTERS if numeral not in prepared.withheld_chapters]
    months = _months(window, prepared.encounters["month"])
    diagnosed = cells.groupby(["prefecture", "chapter", "month"]).size().reindex(
        pd.MultiIndex.from_product([prefectures, chapters, months], names=["prefecture", "chapter", "month"]),
        fill_value=0).rename("count").reset_index()

    measurement = _laplace(epsilon)
    frames = []
    for measure, frame in (("residents", residents), ("diagnoses", diagnosed)):
        true = frame["count"].to_numpy(dtype=np.int64)
        noisy = measurement([int(c) for c in true]) if len(true) else []
        frame = frame.assign(measure=measure, dp_count=np.asarray(noisy, dtype=np.int64), small_cell=true < small_cell)
        frame["count"] = pd.array(true, dtype="Int64")
        frame.loc[frame["small_cell"], "count"] = pd.NA
        frames.append(frame)
    columns = ["measure", "county", "prefecture", "age_band", "sex", "chapter", "month", "count", "small_cell",
               "dp_count"]
    aggregates = pd.concat(frames, ignore_index=True).reindex(columns=columns)
    for column in ("county", "prefecture", "age_band", "sex", "chapter", "month"):
        aggregates[column] = aggregates[column].astype(object).where(aggregates[column].notna(), None)
    per_cell = float(measurement.map(1))
    dp_report = {
        "library": f"OpenDP {version('opendp')}",
        "mechanism": "离散拉普拉斯（几何）机制 discrete Laplace (geometric) mechanism: OpenDP make_laplace on a "
                     "vector of integer counts, L1 sensitivity 1 per person per cell",
        "scale": 1 / epsilon,
        "epsilon_per_cell": per_cell,
        "delta": 0.0,
        "privacy_unit": "一人（增删一人）one person, add/remove neighbouring data sets; a person counts once in a "
                        "resident cell and at most once in each diagnosis cell",
        "person_level_epsilon": {
            "residents": per_cell,
            "diagnoses": float(measurement.map(max_cells)) if max_cells else 0.0,
            "diagnosis_cells_per_person_max": max_cells,
            "total": per_cell + (float(measurement.map(max_cells)) if max_cells else 0.0),
        },
        "note": "dp_count may be negative or differ from count: it is the noisy value, unrounded and unclamped "
                "(clamp or sum it as your analysis needs; post-processing keeps the guarantee)",
    }
    return aggregates, dp_report


def _laplace(epsilon: float) -> Any:
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_laplace
    from opendp.metrics import l1_distance
    from opendp.mod import enable_features

    enable_features("contrib")
    return make_laplace(vector_domain(atom_domain(T=int)), l1_distance(T=int), scale=1 / epsilon)


def _months(window: tuple[pd.Timestamp | None, pd.Timestamp | None], observed: pd.Series) -> list[str]:
    """Every month of the window; an open end takes the exported encounters' first or last month."""
    since, until = window
    first = since.to_period("M") if since is not None else (pd.Period(observed.min(), "M") if len(observed) else None)
    last = (until - pd.Timedelta(microseconds=1)).to_period("M") if until is not None else (
        pd.Period(observed.max(), "M") if len(observed) else None)
    if first is None or last is None or last < first:
        return []
    return [str(p) for p in pd.period_range(first, last, freq="M")]


# ---------------------------------------------------------------------------------------------------------- report


def _document(*, prepared: _Prepared, source: _Source, result: Any, check: Any, models: list[PrivacyModel],
              window: tuple[pd.Timestamp | None, pd.Timestamp | None], parameters: dict[str, Any],
              aggregates: pd.DataFrame, dp_report: dict[str, Any], tables: dict[str, pd.DataFrame],
              files: dict[str, dict[str, Any]], signer: SM2KeyPair | None, key_id: str) -> dict[str, Any]:
    k_model, l_model = models
    suppressed = set(prepared.people.loc[result.suppressed_rows.to_numpy(), "resident"])
    small = aggregates[aggregates["small_cell"]].groupby("measure").size()
    persons = len(prepared.people)
    return {
        "format": FORMAT,
        "generated_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "as_of": prepared.as_of.isoformat(),
        "window": {"since": _iso(window[0]), "until": _iso(window[1])},
        "parameters": {**parameters, "metric": result.metric},
        "pseudonyms": {
            "algorithm": f"HMAC-SM3(key, original key), first {PSEUDONYM_DIGITS} hex digits",
            "applies_to": ["residents", "encounters", "diagnoses"],
            "key_id": key_id,
        },
        "persons": {
            "basis": "master_index" if source.from_index else "records",
            "note": ("一人一个居民节点 one resident per master person (records outside the index: one each)"
                     if source.from_index else
                     "未建主索引：一条居民记录一个节点 no master index: one resident per source record, so one person "
                     "may appear several times and k counts records, not people (run `healthgraph mpi build`)"),
            "master_persons": source.from_index,
            "unlinked_records": len(source.persons) - source.from_index,
            "excluded_without_birth_date_or_county": prepared.excluded_persons,
            "exported_before_suppression": persons,
        },
        "privacy_model": {
            "quasi_identifiers": list(QUASI_IDENTIFIERS),
            "sensitive": SENSITIVE,
            "sensitive_definition": "ICD-10 chapter of the resident's most frequent primary diagnosis in the window "
                                    f"(ties: the lower chapter; '{NO_DIAGNOSIS}' without one)",
            "models": [k_model.label, l_model.label],
            "hierarchies": {name: list(levels) for name, levels in LEVEL_NAMES.items()},
            "age_at": prepared.as_of.isoformat(),
        },
        "generalisation": {
            "levels": dict(result.levels),
            "level_names": {name: LEVEL_NAMES[name][level] for name, level in result.levels.items()},
            "information_loss": result.loss,
            "relative_information_loss": result.relative_loss,
            "metric": result.metric,
            "lattice_nodes": result.stats.nodes,
            "nodes_evaluated": result.stats.evaluated,
        },
        "suppression": {
            "suppressed_residents": result.suppressed,
            "limit": result.max_suppressed,
            "fraction": result.suppressed / persons if persons else 0.0,
            "encounters_withdrawn": int(prepared.encounters["resident"].isin(suppressed).sum()),
            "diagnoses_withdrawn": int(prepared.diagnoses["resident"].isin(suppressed).sum()),
        },
        "restricted": {
            "diagnoses_removed": int(sum(prepared.restricted.values())),
            "by_label": {name: int(n) for name, n in prepared.restricted.items()},
            "encounters_removed": prepared.restricted_encounters,
            "chapters_withheld": list(prepared.withheld_chapters),
            "uncodable_diagnoses_removed": prepared.uncodable,
        },
        "verification": {
            "ok": check.ok,
            "k": int(check.achieved[k_model.label]),
            "l_entropy": float(check.achieved[l_model.label]),
            "classes": check.classes,
            "released": check.released,
            "by": "services.anonymity.verify on the written residents.parquet",
        },
        "aggregates": {
            "small_cell": parameters["small_cell"],
            "cells": {str(m): int(n) for m, n in aggregates.groupby("measure").size().items()},
            "small_cells_suppressed": {str(m): int(small.get(m, 0)) for m in ("residents", "diagnoses")},
            "definitions": {
                "residents": "residents per (county, 5-year age band, sex), before suppression",
                "diagnoses": "persons with ≥ 1 diagnosis per (prefecture of residence, chapter, month)",
            },
        },
        "differential_privacy": dp_report,
        "rows": {name: len(frame) for name, frame in tables.items()},
        "incomplete_encounters_skipped": source.incomplete_encounters,
        "files": files,
        "signature": ({"algorithm": "SM2 (GB/T 32918) over SM3", "key_id": signer.key_id, "signed": MANIFEST,
                       "file": SIGNATURE} if signer else None),
    }


def _markdown(doc: dict[str, Any]) -> str:
    p, g, s, r, v, d = (doc["parameters"], doc["generalisation"], doc["suppression"], doc["restricted"],
                        doc["verification"], doc["differential_privacy"])
    levels = ", ".join(f"{name} → {label}" for name, label in g["level_names"].items())
    restricted = ", ".join(f"{name} {n}" for name, n in r["by_label"].items()) or "0"
    lines = [
        "# 科研数据导出报告 Research export report",
        "",
        f"- 生成时间 generated: {doc['generated_at']} · 年龄基准日 as of: {doc['as_of']} · "
        f"时间窗 window: {doc['window']['since'] or '…'} – {doc['window']['until'] or '…'}",
        f"- 个人基础 persons: {doc['persons']['note']}",
        f"- 假名 pseudonyms: {doc['pseudonyms']['algorithm']}; key id `{doc['pseudonyms']['key_id']}` (the same id "
        f"means the same key, so ids join across exports)",
        "",
        "## 隐私模型 Privacy model",
        "",
        "| 参数 parameter | 值 value |",
        "|---|---|",
        f"| k-匿名 k-anonymity | k = {p['k']} |",
        f"| 熵ℓ-多样性 entropy ℓ-diversity on `{doc['privacy_model']['sensitive']}` | ℓ = {p['l']} |",
        f"| 准标识符 quasi-identifiers | {', '.join(doc['privacy_model']['quasi_identifiers'])} |",
        f"| 抑制上限 suppression limit | {p['suppression']:.2%} ({s['limit']} residents) |",
        f"| 小单元阈值 small-cell threshold | {p['small_cell']} |",
        f"| 差分隐私 ε (per cell) | {p['epsilon']} |",
        "",
        "## 泛化与信息损失 Generalisation and information loss",
        "",
        f"- 泛化节点 node: {levels} (levels {g['levels']})",
        f"- 信息损失 information loss ({g['metric']}): {g['information_loss']:.2f} absolute, "
        f"{g['relative_information_loss']:.2%} relative",
        f"- 抑制 suppressed: {s['suppressed_residents']} residents ({s['fraction']:.2%}; limit {s['limit']}), with "
        f"{s['encounters_withdrawn']} encounters and {s['diagnoses_withdrawn']} diagnoses",
        f"- 校验 verification: k = {v['k']}, entropy ℓ = {v['l_entropy']:.3f} over {v['classes']} classes of "
        f"{v['released']} residents — {'通过 OK' if v['ok'] else '未通过 FAILED'}",
        "",
        "## 受限诊断 Restricted diagnoses",
        "",
        f"- 已移除 removed: {r['diagnoses_removed']} diagnoses ({restricted}); {r['encounters_removed']} encounters "
        f"that had only restricted diagnoses; chapters withheld entirely: {', '.join(r['chapters_withheld']) or '-'}",
        "",
        "## 汇总与差分隐私 Aggregates and differential privacy",
        "",
        f"- 小单元 small cells (< {p['small_cell']}) withheld and marked `small_cell`: "
        + ", ".join(f"{m} {n} of {doc['aggregates']['cells'].get(m, 0)}"
                    for m, n in doc["aggregates"]["small_cells_suppressed"].items()),
        f"- 机制 mechanism: {d['mechanism']} ({d['library']}); scale {d['scale']:g}, ε per cell "
        f"{d['epsilon_per_cell']:g}, δ = 0",
        f"- 隐私单位 privacy unit: {d['privacy_unit']}",
        f"- 个人层面 person-level ε: residents {d['person_level_epsilon']['residents']:g}; diagnoses "
        f"{d['person_level_epsilon']['diagnoses']:g} (≤ {d['person_level_epsilon']['diagnosis_cells_per_person_max']} "
        f"cells per person); total {d['person_level_epsilon']['total']:g}",
        "",
        "## 行数 Rows",
        "",
        "| 表 table | 行 rows |",
        "|---|---|",
        *(f"| {name} | {n:,} |" for name, n in doc["rows"].items()),
        "",
        "## 文件摘要 File digests (SHA-256)",
        "",
        *(f"- `{name}` {entry['sha256']} ({entry['bytes']:,} bytes)" for name, entry in doc["files"].items()),
        "",
        "## 签名 Signature",
        "",
        (f"- {MANIFEST} signed with SM2 key `{doc['signature']['key_id']}` → {SIGNATURE}; check with "
         "`healthgraph export verify DIR --key PUBLIC.pem`" if doc["signature"] else "- 未签名 unsigned"),
        "",
    ]
    return "\n".join(lines)


def _write_manifest(out: Path, signer: SM2KeyPair | None) -> None:
    manifest: dict[str, Any] = {"format": FORMAT, "files": {name: _digest(out / name)
                                                            for name in (*DATA_FILES, *REPORT_FILES)}}
    if signer is not None:
        manifest["signer"] = {"algorithm": "SM2 (GB/T 32918) over SM3", "key_id": signer.key_id,
                              "public_key": signer.public_hex()}
    raw = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if signer is not None:
        (out / SIGNATURE).write_text(signer.sign(raw).hex() + "\n", encoding="ascii")
    (out / MANIFEST).write_bytes(raw)


def _digest(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        sha = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"sha256": sha, "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------------------------------------- helpers


@contextmanager
def _steps(show: bool) -> Iterator[Any]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), disable=not show,
                  transient=True) as bar:

        @contextmanager
        def step(description: str) -> Iterator[None]:
            task = bar.add_task(description, total=1)
            yield
            bar.update(task, completed=1)

        yield step


def _check_parameters(key: bytes, k: int, l: float, suppression: float, epsilon: float,  # noqa: E741
                      small_cell: int, signer: SM2KeyPair | None) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise InvalidConfiguration("假名密钥须至少16字节 the pseudonym key must be at least 16 bytes")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InvalidConfiguration(f"k 须为不小于2的整数 k must be an integer ≥ 2, got {k!r}", k=repr(k))
    if isinstance(l, bool) or not isinstance(l, int | float) or not l >= 1:
        raise InvalidConfiguration(f"ℓ 须不小于1 l must be ≥ 1, got {l!r}", l=repr(l))
    if isinstance(suppression, bool) or not isinstance(suppression, int | float) or not 0 <= suppression <= 1:
        raise InvalidConfiguration(f"抑制上限须在0到1之间 suppression must be a fraction in [0, 1], got {suppression!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 < epsilon < math.inf:
        raise InvalidConfiguration(f"ε 须为正数 epsilon must be a positive number, got {epsilon!r}")
    if isinstance(small_cell, bool) or not isinstance(small_cell, int) or small_cell < 1:
        raise InvalidConfiguration(f"小单元阈值须为正整数 small_cell must be an integer ≥ 1, got {small_cell!r}")
    if signer is not None and not signer.has_private:
        raise InvalidConfiguration("签名密钥须含私钥 the signer must be a key pair with its private key")


def _timestamp(value: dt.date | str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InvalidConfiguration(f"{name} 不是日期 {name} is not a date: {value!r}", **{name: str(value)})
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def _date(value: dt.date | str | None, name: str) -> dt.date | None:
    stamp = _timestamp(value, name)
    return None if stamp is None else stamp.date()


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


def _public_key(key: SM2KeyPair | str | Path) -> SM2KeyPair:
    if isinstance(key, SM2KeyPair):
        return key.public_key()
    if isinstance(key, Path):
        return SM2KeyPair.load(key).public_key()
    text = key.strip()
    if "-----BEGIN" in text:
        return SM2KeyPair.from_pem(text).public_key()
    if re.fullmatch(r"[0-9a-fA-F]{130}", text):
        return SM2KeyPair.from_public_hex(text)
    return SM2KeyPair.load(Path(text)).public_key()

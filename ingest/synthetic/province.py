"""A seeded, deterministic synthetic province: the same seed and size give the same files.

Real GB/T 2260 divisions; institutions by grade with departments and licensed 诊疗科目;
practitioners with licences and registered scope; residents with valid 18-digit ids; one year of
encounters, diagnoses, prescriptions, lab results, appointments, documents, blood donations →
units → transfusions, vaccinations by lot, food lots and deliveries with meals. Every person has a
population-registry record and a record in each institution's own system, some with the errors
real systems make; the ground truth says which records are one person. The bulk is clean; the
planted scenarios (anomalies, an outbreak, a positive donor, an AEFI cluster) are listed in
ground_truth.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingest.knowledge import BUILTIN, write_knowledge
from ingest.synthetic import people
from ingest.synthetic.people import zfill
from ingest.writer import ProvinceWriter
from ontology.knowledge import load_knowledge
from ontology.identifiers import province_divisions, uscc_check_char
from ontology.vocab import numeric, vocab

GENERATOR_VERSION = "3"
WINDOW_START = pd.Timestamp("2025-01-01")
WINDOW_DAYS = 365
AS_OF = pd.Timestamp("2026-01-01")
"""Events fall in calendar year 2025; stock and expiry states are as of 2026-01-01."""

CHRONIC_ICD = ("I10", "E11", "E78", "I25", "J44", "I48", "I50", "E03", "N18")
"""Chronic conditions (慢病) whose prescriptions may exceed 7 days (处方管理办法 第十九条)."""

TOWNS = np.array(["城关", "新城", "东城", "西城", "南湖", "北山", "前进", "红星", "长乐", "永安", "太平",
                  "安定", "兴隆", "和平", "双桥", "石桥", "白沙", "青山", "梅林", "桃源"])
STREETS = np.array(["解放路", "人民路", "中山路", "建设路", "文化路", "和平路", "新华路", "胜利路", "青年路",
                    "朝阳路", "长安路", "东风路", "环城路", "滨江路", "学院路", "工业路", "健康路", "幸福路"])
MANUFACTURERS = np.array(["东方生物制品有限公司", "华康疫苗有限公司", "长江生物技术有限公司", "北辰生物药业有限公司"])

SUBJECTS_BY_KIND = {
    "Hospital3": None,  # every subject in the vocabulary
    "Hospital2": ["02", "03", "04", "05", "07", "10", "11", "12", "15", "16", "19", "20", "30", "32", "50"],
    "CommunityHealthCenter": ["01", "02", "12", "50"],
    "TownshipHealthCenter": ["01", "02", "50"],
    "Clinic": ["02"],
    "CDC": ["01", "30"],
    "BloodCenter": ["30"],
    "PlasmaStation": ["30"],
}
PHYSICIANS_PER_DEPT = {"Hospital3": 5, "Hospital2": 3, "CommunityHealthCenter": 2, "TownshipHealthCenter": 2,
                       "Clinic": 1, "CDC": 1, "BloodCenter": 1, "PlasmaStation": 1}


@dataclass
class GenerationResult:
    out: Path
    counts: dict[str, int]
    ground_truth: dict[str, Any]


@dataclass
class Province:
    """Arrays shared by the steps of generation."""

    rng: np.random.Generator
    writer: ProvinceWriter = field(default_factory=ProvinceWriter)
    truth: dict[str, Any] = field(default_factory=dict)
    inst: pd.DataFrame = field(default_factory=pd.DataFrame)
    depts: pd.DataFrame = field(default_factory=pd.DataFrame)
    docs: pd.DataFrame = field(default_factory=pd.DataFrame)
    persons: pd.DataFrame = field(default_factory=pd.DataFrame)
    records: pd.DataFrame = field(default_factory=pd.DataFrame)
    encounters: pd.DataFrame = field(default_factory=pd.DataFrame)
    pending_units: list[pd.DataFrame] = field(default_factory=list)
    """Blood units made from donations, not yet written (their status depends on transfusions)."""
    units: pd.DataFrame = field(default_factory=pd.DataFrame)
    transfusions: list[pd.DataFrame] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def next_ids(self, prefix: str, n: int) -> np.ndarray:
        start = self.counters.get(prefix, 0)
        self.counters[prefix] = start + n
        return np.char.add(prefix, zfill(np.arange(start, start + n).astype(str), 8))


def _uscc(rng: np.random.Generator, prefix: str, division: np.ndarray) -> np.ndarray:
    alphabet = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
    body = rng.choice(alphabet[:10], (len(division), 9))
    out = []
    for d, b in zip(division, body, strict=True):
        s17 = prefix + d + "".join(b)
        out.append(s17 + uscc_check_char(s17))
    return np.array(out)


def _times(rng: np.random.Generator, n: int, *, hours: tuple[int, int] = (8, 17)) -> np.ndarray:
    day = rng.integers(0, WINDOW_DAYS, n)
    minute = rng.integers(hours[0] * 60, hours[1] * 60, n)
    return (WINDOW_START.to_datetime64() + day.astype("timedelta64[D]") + minute.astype("timedelta64[m]")).astype(
        "datetime64[s]")


# ---------------------------------------------------------------------------- steps
def divisions(p: Province, province_code: str, residents: int) -> pd.DataFrame:
    divs = province_divisions(province_code)
    counties = [d for d in divs if d.level == "county"]
    n_used = int(np.clip(residents // 3000, 3, len(counties)))
    used = sorted(p.rng.choice(len(counties), n_used, replace=False))
    frame = pd.DataFrame([{"code": d.code, "name": d.name, "level": d.level} for d in divs])
    p.writer.add_nodes("Division", frame)
    child = [d for d in divs if d.parent_code and d.parent_code in {x.code for x in divs}]
    p.writer.add_edges("within", [d.code for d in child], [d.parent_code for d in child], "Division", "Division")
    names = {d.code: d.name for d in divs}
    used_c = pd.DataFrame([{"county": counties[i].code, "county_name": counties[i].name,
                            "prefecture": counties[i].parent_code,
                            "prefecture_name": names.get(counties[i].parent_code or "", "")} for i in used])
    used_c["province_name"] = names[province_code]
    return used_c


def institutions(p: Province, counties: pd.DataFrame, residents: int) -> None:
    rng = p.rng
    per_county = residents / len(counties)
    rows: list[dict[str, Any]] = []

    def add(kind: str, cls: str, county: pd.Series, name: str, **extra: Any) -> None:
        rows.append({"kind": kind, "class": cls, "division_code": county["county"], "name": name,
                     "prefecture": county["prefecture"], **extra})

    prefectures = counties.drop_duplicates("prefecture")
    for _, c in prefectures.iterrows():
        add("Hospital3", "Hospital", c, f"{c.prefecture_name}第一人民医院", grade="3A", beds=int(rng.integers(1200, 3000)))
        add("CDC", "CDC", c, f"{c.prefecture_name}疾病预防控制中心")
        add("BloodCenter", "BloodCenter", c, f"{c.prefecture_name}中心血站")
    first = counties.iloc[0]
    add("CDC", "CDC", first, f"{first.province_name}疾病预防控制中心")
    add("PlasmaStation", "PlasmaStation", first, f"{first.county_name}单采血浆站")
    for _, c in counties.iterrows():
        district = c.county_name.endswith("区")
        add("Hospital2", "Hospital", c, f"{c.county_name}人民医院", grade=str(rng.choice(["2A", "2B"])),
            beds=int(rng.integers(300, 800)))
        for t in rng.choice(TOWNS, max(1, int(per_county // 8000)), replace=False):
            if district:
                add("CommunityHealthCenter", "CommunityHealthCenter", c, f"{c.county_name}{t}街道社区卫生服务中心",
                    beds=int(rng.integers(0, 40)))
            else:
                add("TownshipHealthCenter", "TownshipHealthCenter", c, f"{c.county_name}{t}镇卫生院",
                    beds=int(rng.integers(10, 60)))
        for i in range(max(1, int(per_county // 4000))):
            add("Clinic", "Clinic", c, f"{c.county_name}{rng.choice(STREETS)}{i + 1}号诊所", beds=0)
        for i in range(max(1, int(per_county // 5000))):
            add("Pharmacy", "Pharmacy", c, f"{c.county_name}康民大药房第{i + 1}分店")
        add("FoodProducer", "FoodProducer", c, f"{c.county_name}{rng.choice(TOWNS)}食品厂")
        add("FoodProcessor", "FoodProcessor", c, f"{c.county_name}鲜味食品加工有限公司")
        add("FoodDistributor", "FoodDistributor", c, f"{c.county_name}农贸配送中心")
        for i in range(max(2, int(per_county // 1500))):
            add("Venue", "Venue", c, f"{c.county_name}{rng.choice(STREETS)}{rng.choice(['饭店', '食堂', '小吃店', '餐馆'])}{i + 1}")
    inst = pd.DataFrame(rows)
    public = inst["kind"].isin(list(SUBJECTS_BY_KIND))
    inst["uscc"] = ""
    inst.loc[public, "uscc"] = _uscc(rng, "12", inst.loc[public, "division_code"].to_numpy())
    inst.loc[~public, "uscc"] = _uscc(rng, "91", inst.loc[~public, "division_code"].to_numpy())
    assert inst["uscc"].is_unique
    inst["key"] = inst["uscc"]
    inst["address"] = inst["name"].str.slice(0, 3) + rng.choice(STREETS, len(inst)) + \
        rng.integers(1, 300, len(inst)).astype(str) + "号"
    inst["latitude"] = 28.0 + rng.random(len(inst)) * 3
    inst["longitude"] = 118.5 + rng.random(len(inst)) * 3
    p.inst = inst
    cols = ["uscc", "class", "name", "division_code", "address", "latitude", "longitude", "grade", "beds"]
    p.writer.add_nodes("Institution", inst[[c for c in cols if c in inst]])
    p.writer.add_edges("located_in", inst["key"], inst["division_code"], inst["class"], "Division")


def departments_and_staff(p: Province) -> None:
    rng = p.rng
    subjects = vocab("clinical_subjects")
    subject_name = dict(zip(subjects["code"], subjects["name_zh"], strict=True))
    icd_subjects = set(vocab("icd10")["subject_code"]) & set(subject_name)
    all_subjects = sorted(icd_subjects | {"01", "02", "20", "30", "32"} & set(subject_name))
    rows = []
    for r in p.inst.itertuples():
        if r.kind not in SUBJECTS_BY_KIND:
            continue
        wanted = SUBJECTS_BY_KIND[r.kind] or all_subjects
        for s in wanted:
            if s in subject_name:
                rows.append({"code": f"{r.key}-{s}", "name": subject_name[s], "subject_code": s,
                             "institution": r.key, "kind": r.kind, "prefecture": r.prefecture,
                             "division_code": r.division_code})
    depts = pd.DataFrame(rows)
    p.depts = depts
    p.writer.add_nodes("Department", depts[["code", "name", "subject_code"]])
    p.writer.add_edges("part_of", depts["code"], depts["institution"], "Department", p.inst.set_index("key").loc[
        depts["institution"], "class"].to_numpy())

    # Institution licences: licensed 诊疗科目 = the departments' subjects.
    lic = depts.groupby("institution")["subject_code"].apply(list).reset_index()
    lic_frame = pd.DataFrame({"code": "IL-" + lic["institution"], "class": "InstitutionLicense",
                              "licensed_subjects": lic["subject_code"], "valid_from": pd.Timestamp("2020-01-01"),
                              "valid_to": pd.Timestamp("2030-12-31"), "status": "active",
                              "registration_status": "registered"})
    p.writer.add_nodes("License", lic_frame)
    inst_class = p.inst.set_index("key")["class"]
    p.writer.add_edges("holds_license", lic["institution"], lic_frame["code"],
                       inst_class.loc[lic["institution"]].to_numpy(), "InstitutionLicense")

    # Physicians per department, nurses per hospital department, pharmacists per hospital and pharmacy.
    scopes = vocab("practice_scopes")
    scope_of: dict[str, str] = {}
    for s in scopes.itertuples():
        for code in s.subject_codes.split():
            scope_of.setdefault(code, s.code)
    n_phys = depts["kind"].map(PHYSICIANS_PER_DEPT).to_numpy()
    dept_idx = np.repeat(np.arange(len(depts)), n_phys)
    phys = depts.iloc[dept_idx].reset_index(drop=True)
    phys["class"] = "Physician"
    is_hosp_dept = depts["kind"].isin(["Hospital3", "Hospital2"]).to_numpy()
    nurses = depts[is_hosp_dept].reset_index(drop=True).assign(**{"class": "Nurse"})
    pharm_inst = p.inst[p.inst["kind"].isin(["Hospital3", "Hospital2", "Pharmacy"])]
    pharmacists = pd.DataFrame({"institution": pharm_inst["key"].to_numpy(), "code": None, "class": "Pharmacist",
                                "prefecture": pharm_inst["prefecture"].to_numpy(),
                                "division_code": pharm_inst["division_code"].to_numpy()})
    staff = pd.concat([phys.assign(dept=phys["code"]), nurses.assign(dept=nurses["code"]),
                       pharmacists.assign(dept=None)], ignore_index=True)
    n = len(staff)
    staff["key"] = p.next_ids("D", n)
    sex = np.where(rng.random(n) < 0.45, "1", "2")
    births = (AS_OF - pd.to_timedelta((26 + rng.random(n) * 34) * 365.25, unit="D")).normalize()
    staff["sex"], staff["birth_date"] = sex, births
    staff["name"] = people.NameSampler(rng).sample(sex)
    staff["title"] = rng.choice(["resident", "attending", "associate_chief", "chief"], n, p=[0.35, 0.35, 0.2, 0.1])
    staff["id_number"] = people.id_numbers(staff["division_code"].to_numpy(), births.to_numpy(),
                                           rng.integers(0, 500, n) * 2 + (sex == "1"))
    staff["phone"] = people.phones(rng, n)
    # Ratings and expertise (what appointment platforms publish) come from their own stream, so adding
    # them left every other generated value as it was.
    published = np.random.default_rng(n)
    is_doctor = (staff["class"] == "Physician").to_numpy()
    staff["rating"] = np.where(is_doctor, np.round(published.uniform(3.5, 5.0, n), 1), np.nan)
    staff["expertise"] = [_expertise(code, published) if doc else None
                          for code, doc in zip(staff["subject_code"], is_doctor, strict=True)]
    p.writer.add_nodes("Practitioner", staff[["key", "class", "name", "sex", "birth_date", "title", "id_number",
                                             "phone", "rating", "expertise"]].rename(columns={"key": "code"}))
    p.writer.add_edges("employed_by", staff["key"], staff["institution"], staff["class"],
                       inst_class.loc[staff["institution"]].to_numpy())
    in_dept = staff[staff["dept"].notna()]
    p.writer.add_edges("works_in", in_dept["key"], in_dept["dept"], in_dept["class"], "Department")

    docs = staff[staff["class"] == "Physician"].reset_index(drop=True)
    docs["license"] = np.char.add("110", zfill(np.arange(len(docs)).astype(str), 12))
    docs["scope"] = docs["subject_code"].map(scope_of).fillna("general_practice")
    valid_from = (pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 365 * 10, len(docs)), unit="D"))
    licences = pd.DataFrame({
        "code": docs["license"], "class": "PracticeLicense", "practice_scope": docs["scope"].map(lambda s: [s]),
        "licensed_subjects": docs["subject_code"].map(lambda s: [s]), "valid_from": valid_from,
        "valid_to": pd.Timestamp("2029-12-31"), "status": "active",
        "registration_status": "registered"})
    p.writer.add_nodes("License", licences)
    p.writer.add_edges("holds_license", docs["key"], docs["license"], "Physician", "PracticeLicense")
    p.writer.add_edges("registered_at", docs["license"], docs["institution"], "PracticeLicense",
                       inst_class.loc[docs["institution"]].to_numpy())
    p.docs = docs


def population(p: Province, counties: pd.DataFrame, n: int) -> None:
    rng = p.rng
    ages = people.ages_in_years(rng, n)
    birth = (AS_OF - pd.to_timedelta(ages * 365.25, unit="D")).normalize()
    sex = np.where(rng.random(n) < people.MALE_SHARE, "1", "2")
    county_idx = rng.integers(0, len(counties), n)
    county = counties["county"].to_numpy()[county_idx]
    birth_place = county.copy()
    moved = rng.random(n) < 0.08
    all_counties = np.array([d.code for d in province_divisions(county[0][:2] + "0000") if d.level == "county"])
    birth_place[moved] = rng.choice(all_counties, moved.sum())
    names = people.NameSampler(rng)
    persons = pd.DataFrame({
        "person": np.char.add("P", zfill(np.arange(n).astype(str), 8)),
        "name": names.sample(sex), "sex": sex, "birth_date": birth, "age": ages,
        "division_code": county, "prefecture": counties["prefecture"].to_numpy()[county_idx],
        "phone": people.phones(rng, n),
        "abo": rng.choice(people.ABO, n, p=people.ABO_P),
    })
    # Twins: a second person with the same birth date, birthplace, surname, address and phone.
    twin_of = rng.choice(n, max(1, n // 200), replace=False)
    twin_of = twin_of[ages[twin_of] > 1]
    persons["address"] = (counties["county_name"].to_numpy()[county_idx] + rng.choice(TOWNS, n) +
                          np.where(rng.random(n) < 0.5, "街道", "镇") + rng.choice(STREETS, n) +
                          rng.integers(1, 400, n).astype(str) + "号")
    seq = rng.integers(0, 500, n) * 2 + (sex == "1")
    for i, t in enumerate(twin_of):
        j = int(rng.integers(0, n))
        if j in set(twin_of) or j == t:
            continue
        for col in ("birth_date", "division_code", "prefecture", "phone", "address", "age"):
            persons.at[j, col] = persons.at[t, col]
        birth_place[j] = birth_place[t]
        surname = names.surname_of(np.array([persons.at[t, "name"]]))
        persons.at[j, "name"] = names.sample(np.array([persons.at[j, "sex"]]), surname)[0]
        seq[j] = (seq[t] + 2) % 1000 if (seq[t] + 2) % 2 == (persons.at[j, "sex"] == "1") else (seq[t] + 1) % 1000
        p.truth.setdefault("twins", []).append([persons.at[t, "person"], persons.at[j, "person"]])
        if i > 50:
            break
    persons["birth_place"] = birth_place
    persons["id_number"] = people.id_numbers(birth_place, persons["birth_date"].to_numpy(), seq)
    dup = persons["id_number"].duplicated()
    while dup.any():
        s = persons.loc[dup, "sex"].to_numpy()
        persons.loc[dup, "id_number"] = people.id_numbers(
            persons.loc[dup, "birth_place"].to_numpy(), persons.loc[dup, "birth_date"].to_numpy(),
            rng.integers(0, 500, dup.sum()) * 2 + (s == "1"))
        dup = persons["id_number"].duplicated()
    females = (persons["sex"] == "2") & persons["age"].between(20, 40)
    persons["pregnant"] = females & (rng.random(n) < 0.04)
    p.persons = persons

    registry = persons.assign(source_system="PHIS", source_id=zfill(np.arange(n).astype(str), 9))
    registry["key"] = "PHIS:" + registry["source_id"]
    p.records = registry[["key", "person", "source_system", "source_id"]].assign(institution=None)
    cols = ["source_system", "source_id", "name", "sex", "birth_date", "id_number", "phone", "address",
            "division_code", "pregnant"]
    frame = registry[cols].copy()
    frame["pregnant"] = frame["pregnant"].where(frame["pregnant"], None)
    p.writer.add_nodes("Resident", frame)
    p.writer.add_edges("resides_in", registry["key"], registry["division_code"], "Resident", "Division")


def institution_records(p: Province, pairs: pd.DataFrame) -> pd.Series:
    """Each institution's own record of each person it saw; some carry real-world errors.

    Returns the record key for every (person, institution) pair given.
    """
    rng = p.rng
    uniq = pairs.drop_duplicates().reset_index(drop=True)
    persons = p.persons.set_index("person").loc[uniq["person"]].reset_index()
    n = len(uniq)
    uscc = uniq["institution"].to_numpy()
    system = np.char.add("HIS-", uscc.astype(str))
    source_id = p.next_ids("MRN", n)
    rec = pd.DataFrame({"source_system": system, "source_id": source_id, "name": persons["name"].to_numpy(),
                        "sex": persons["sex"].to_numpy(), "birth_date": persons["birth_date"].to_numpy(),
                        "id_number": persons["id_number"].to_numpy().astype(object),
                        "phone": persons["phone"].to_numpy().astype(object),
                        "address": persons["address"].to_numpy().astype(object),
                        "division_code": persons["division_code"].to_numpy()})
    errors = np.full(n, "", dtype=object)
    u = rng.random((6, n))
    names = people.NameSampler(rng)
    # Missing id numbers (TARGETS: about a quarter of real records lack one; here 15 %).
    missing = u[0] < 0.15
    rec.loc[missing, "id_number"] = None
    errors[missing] += "missing_id "
    legacy = ~missing & (u[1] < 0.02) & (persons["birth_date"].dt.year.to_numpy() < 1999)
    rec.loc[legacy, "id_number"] = [people.legacy_15(x) for x in rec.loc[legacy, "id_number"]]
    errors[legacy] += "legacy_15 "
    typo = ~missing & ~legacy & (u[1] > 0.985)
    rec.loc[typo, "id_number"] = [people.id_typo(x, rng) for x in rec.loc[typo, "id_number"]]
    errors[typo] += "id_typo "
    homo_rows = np.flatnonzero(u[2] < 0.04)
    for i in homo_rows:
        variant = names.homophone_variant(rec.at[i, "name"])
        if variant:
            rec.at[i, "name"] = variant
            errors[i] += "homophone "
    bd = rec["birth_date"]
    swap = (u[3] < 0.02) & (bd.dt.day.to_numpy() <= 12) & (bd.dt.day.to_numpy() != bd.dt.month.to_numpy())
    swapped = pd.to_datetime({"year": bd[swap].dt.year, "month": bd[swap].dt.day, "day": bd[swap].dt.month})
    rec.loc[swap, "birth_date"] = swapped
    errors[swap] += "date_transposed "
    new_phone = u[4] < 0.10
    rec.loc[new_phone, "phone"] = people.phones(rng, int(new_phone.sum()))
    errors[new_phone] += "phone_changed "
    short_addr = u[5] < 0.2
    rec.loc[short_addr, "address"] = rec.loc[short_addr, "address"].str.slice(3)
    p.writer.add_nodes("Resident", rec)
    keys = pd.Series(np.char.add(np.char.add(system, ":"), source_id.astype(str)))
    p.writer.add_edges("resides_in", keys, rec["division_code"], "Resident", "Division")
    truth = pd.DataFrame({"record": keys, "person": uniq["person"], "errors": pd.Series(errors).str.strip()})
    p.records = pd.concat([p.records, truth.rename(columns={"record": "key"}).assign(
        institution=uniq["institution"].to_numpy(), source_system=system, source_id=source_id)], ignore_index=True)
    lookup = pd.Series(keys.to_numpy(), index=pd.MultiIndex.from_frame(uniq))
    return pd.Series(lookup.loc[pd.MultiIndex.from_frame(pairs)].to_numpy(), index=pairs.index)


def record_of(p: Province, person: pd.Series, institution: pd.Series) -> pd.Series:
    """The record key of each person at each institution (records are created once, on first use)."""
    pairs = pd.DataFrame({"person": person.to_numpy(), "institution": institution.to_numpy()})
    # Only these persons' records: indexing every record per call made each planted encounter take seconds at 1M.
    mine = p.records[p.records["person"].isin(pairs["person"]).to_numpy()]
    known = mine.dropna(subset=["institution"]).set_index(["person", "institution"])["key"]
    idx = pd.MultiIndex.from_frame(pairs)
    found = pd.Series(known.reindex(idx).to_numpy(), index=pairs.index)
    todo = found.isna().to_numpy()
    if todo.any():
        found[todo] = institution_records(p, pairs[todo]).to_numpy()
    return found


def registry_record(p: Province, person: pd.Series) -> np.ndarray:
    return ("PHIS:" + person.str.slice(1).astype(int).astype(str).str.zfill(9)).to_numpy()


def _sample_icd(p: Province, ages: np.ndarray, sex: np.ndarray) -> np.ndarray:
    icd = vocab("icd10")
    weight = numeric(icd, "prevalence_weight", 0.1).to_numpy()
    lo = numeric(icd, "min_age", 0).to_numpy()
    hi = numeric(icd, "max_age", 200).to_numpy()  # empty = no upper limit; 0 = newborns only
    isex = icd["sex"].to_numpy()
    # Class A/B notifiable diseases appear only in planted scenarios; the bulk stays common.
    weight = np.where(icd["notifiable_class"].isin(["A", "B"]).to_numpy(), weight * 0.05, weight)
    choice = p.rng.choice(len(icd), len(ages), p=weight / weight.sum())
    for _ in range(6):
        bad = (ages < lo[choice]) | (ages > hi[choice]) | ((isex[choice] != "") & (isex[choice] != sex))
        if not bad.any():
            break
        choice[bad] = p.rng.choice(len(icd), bad.sum(), p=weight / weight.sum())
    fallback = int(np.flatnonzero(icd["code"].to_numpy() == "J06.9")[0]) if (icd["code"] == "J06.9").any() else 0
    bad = (ages < lo[choice]) | (ages > hi[choice]) | ((isex[choice] != "") & (isex[choice] != sex))
    choice[bad] = fallback
    return choice


def encounters(p: Province, persons: pd.DataFrame, rate: float = 1.0) -> None:
    """The year's visits of ``persons`` (a slice of ``p.persons``): ``p.encounters`` holds them until the next slice."""
    rng = p.rng
    persons = persons.reset_index(drop=True)
    age = persons["age"].to_numpy()
    lam = np.select([age < 5, age < 50, age < 65], [2.5, 1.2, 2.0], 3.5) * rate
    counts = rng.poisson(lam)
    who = np.repeat(np.arange(len(persons)), counts)
    n = len(who)
    pe = persons.iloc[who].reset_index(drop=True)
    kind_u = rng.random(n)
    cls = np.where(kind_u < 0.07, "InpatientEncounter", np.where(kind_u < 0.15, "EmergencyEncounter",
                                                                   "OutpatientEncounter"))
    icd = vocab("icd10")
    icd_idx = _sample_icd(p, pe["age"].to_numpy(), pe["sex"].to_numpy())
    subject = icd["subject_code"].to_numpy()[icd_idx]
    subject = np.where(cls == "EmergencyEncounter", "20", subject)

    inst = p.inst
    by_county_kind = {(r.division_code, r.kind): r.key for r in inst.drop_duplicates(["division_code", "kind"])
                      .itertuples()}
    top = {r.prefecture: r.key for r in inst[inst["kind"] == "Hospital3"].itertuples()}
    u = rng.random(n)
    target_kind = np.where(cls == "OutpatientEncounter",
                           np.select([u < 0.45, u < 0.55, u < 0.85], ["CHC", "Clinic", "Hospital2"], "Hospital3"),
                           np.where(u < 0.65, "Hospital2", "Hospital3"))
    county = pe["division_code"].to_numpy()
    primary = np.array([by_county_kind.get((c, "CommunityHealthCenter")) or by_county_kind.get((c, "TownshipHealthCenter"))
                        for c in county])
    clinic = np.array([by_county_kind.get((c, "Clinic")) for c in county])
    county_hosp = np.array([by_county_kind.get((c, "Hospital2")) for c in county])
    top_hosp = pe["prefecture"].map(top).to_numpy()
    chosen = np.select([target_kind == "CHC", target_kind == "Clinic", target_kind == "Hospital2"],
                       [primary, clinic, county_hosp], top_hosp)
    dept_key = pd.Series(np.char.add(np.char.add(chosen.astype(str), "-"), subject.astype(str)))
    has = dept_key.isin(set(p.depts["code"])).to_numpy()
    chosen = np.where(has, chosen, top_hosp)
    dept_key = pd.Series(np.char.add(np.char.add(chosen.astype(str), "-"), subject.astype(str)))
    missing = ~dept_key.isin(set(p.depts["code"])).to_numpy()
    dept_key[missing] = np.char.add(chosen[missing].astype(str), "-03")  # internal medicine takes the rest
    assert dept_key.isin(set(p.depts["code"])).all(), "every encounter needs a department"

    # A physician of the department.
    docs = p.docs.sort_values("code", kind="stable").reset_index(drop=True)
    first = docs.groupby("code").cumcount() == 0
    start = pd.Series(np.flatnonzero(first.to_numpy()), index=docs.loc[first, "code"].to_numpy())
    size = docs.groupby("code").size()
    offs = start.loc[dept_key].to_numpy() + (rng.random(n) * size.loc[dept_key].to_numpy()).astype(int)
    physician = docs["key"].to_numpy()[offs]

    when = np.where(cls == "EmergencyEncounter", _times(rng, n, hours=(0, 24)), _times(rng, n))
    enc = pd.DataFrame({"person": pe["person"], "class": cls, "occurred_at": pd.to_datetime(when),
                        "institution": chosen, "department": dept_key.to_numpy(), "physician": physician,
                        "icd": icd["code"].to_numpy()[icd_idx], "age": pe["age"], "sex": pe["sex"],
                        "pregnant": pe["pregnant"], "prefecture": pe["prefecture"]})
    los = rng.integers(2, 12, n)
    enc["ended_at"] = pd.NaT
    inp = enc["class"] == "InpatientEncounter"
    enc.loc[inp, "ended_at"] = enc.loc[inp, "occurred_at"] + pd.to_timedelta(los[inp.to_numpy()], unit="D")
    # No resident is admitted twice at once in the clean bulk (overlap is a planted fraud signal).
    enc = enc.sort_values(["person", "occurred_at"], kind="stable").reset_index(drop=True)
    stays = enc[enc["class"] == "InpatientEncounter"]  # every stay has an end: no NaT to break the running max
    prev_end = stays.groupby("person")["ended_at"].transform(lambda s: s.shift().cummax())
    overlap = stays.index[(stays["occurred_at"] < prev_end).to_numpy()]
    enc.loc[overlap, "class"] = "OutpatientEncounter"
    enc.loc[overlap, "ended_at"] = pd.NaT
    enc["record"] = record_of(p, enc["person"], enc["institution"]).to_numpy()
    enc["source_system"] = "HIS-" + enc["institution"]
    enc["source_id"] = p.next_ids("E", len(enc))
    enc["key"] = enc["source_system"] + ":" + enc["source_id"]
    p.encounters = enc
    emit_encounters(p, enc)


def emit_encounters(p: Province, enc: pd.DataFrame) -> None:
    w = p.writer
    inst_class = p.inst.set_index("key")["class"]
    w.add_nodes("Encounter", enc[["source_system", "source_id", "class", "occurred_at", "ended_at"]])
    w.add_edges("of_patient", enc["key"], enc["record"], enc["class"], "Resident")
    w.add_edges("at_institution", enc["key"], enc["institution"], enc["class"],
                inst_class.loc[enc["institution"]].to_numpy())
    w.add_edges("in_department", enc["key"], enc["department"], enc["class"], "Department")
    w.add_edges("attended_by", enc["key"], enc["physician"], enc["class"], "Physician")


def diagnoses(p: Province, enc: pd.DataFrame | None = None, *, report_delay: Callable[[int], np.ndarray] | None = None,
              ) -> pd.DataFrame:
    rng = p.rng
    enc = p.encounters if enc is None else enc
    icd = vocab("icd10").set_index("code")
    limit = numeric(icd.reset_index(), "report_limit_hours", 0).to_numpy()
    limit_of = pd.Series(limit, index=icd.index)
    dx = pd.DataFrame({"encounter": enc["key"], "source_system": enc["source_system"],
                       "icd10_code": enc["icd"], "occurred_at": enc["occurred_at"], "is_primary": True,
                       "enc_class": enc["class"]})
    second = rng.random(len(enc)) < 0.12
    chronic = np.array([c for c in CHRONIC_ICD if c in icd.index])
    extra = dx[second & (enc["age"].to_numpy() >= 40)].copy()
    extra["icd10_code"] = rng.choice(chronic, len(extra))
    extra["is_primary"] = False
    extra = extra[extra["icd10_code"] != dx.loc[extra.index, "icd10_code"]]
    dx = pd.concat([dx, extra], ignore_index=True)
    dx["source_id"] = p.next_ids("DX", len(dx))
    hours = limit_of.reindex(dx["icd10_code"]).fillna(0).to_numpy()
    notifiable = hours > 0
    delay = report_delay(int(notifiable.sum())) if report_delay else rng.uniform(0.1, 0.5, notifiable.sum()) * hours[notifiable]
    dx["reported_at"] = pd.NaT
    dx.loc[notifiable, "reported_at"] = (dx.loc[notifiable, "occurred_at"] +
                                         pd.to_timedelta(delay * 3600, unit="s")).dt.floor("s")
    dx["key"] = dx["source_system"] + ":" + dx["source_id"]
    p.writer.add_nodes("Diagnosis", dx[["source_system", "source_id", "icd10_code", "occurred_at", "is_primary",
                                        "reported_at"]])
    p.writer.add_edges("in_encounter", dx["key"], dx["encounter"], "Diagnosis", dx["enc_class"])
    p.writer.add_edges("of_disease", dx["key"], dx["icd10_code"], "Diagnosis", "Disease")
    return dx


def prescriptions(p: Province) -> None:
    rng = p.rng
    enc = p.encounters
    drugs = vocab("drugs")
    d_class = drugs["drug_class"].to_numpy()
    d_max = numeric(drugs, "max_daily_dose", 1e9).to_numpy()
    d_typ = numeric(drugs, "typical_dose", 1).to_numpy()
    d_minage = numeric(drugs, "min_age", 0).to_numpy()
    d_preg = (drugs["pregnancy_contraindicated"] == "true").to_numpy()
    gets = rng.random(len(enc)) < np.where(enc["class"] == "InpatientEncounter", 0.8, 0.55)
    rx = enc[gets].reset_index(drop=True)
    rx["rx"] = rx["source_system"] + ":" + p.next_ids("RX", len(rx))
    n_items = rng.choice([1, 2, 3, 4], len(rx), p=[0.4, 0.3, 0.2, 0.1])
    items = rx.loc[np.repeat(np.arange(len(rx)), n_items)].reset_index(drop=True)
    items["drug"] = rng.integers(0, len(drugs), len(items))
    # Age on the day of prescribing, as a prescription reviewer computes it (not age at AS_OF).
    born = p.persons.set_index("person")["birth_date"].reindex(items["person"]).to_numpy()
    age_then = ((items["occurred_at"].to_numpy() - born) / np.timedelta64(1, "D")).astype(int) / 365.25
    for _ in range(5):  # redraw drugs unsuitable for the patient (age, pregnancy)
        bad = (age_then < d_minage[items["drug"]]) | (items["pregnant"].to_numpy() & d_preg[items["drug"]])
        if not bad.any():
            break
        items.loc[bad, "drug"] = rng.integers(0, len(drugs), bad.sum())
    bad = (age_then < d_minage[items["drug"]]) | (items["pregnant"].to_numpy() & d_preg[items["drug"]])
    items = items[~bad]
    items["drug_class"] = d_class[items["drug"]]
    items = items[~items.duplicated(["rx", "drug_class"])]  # no duplicate therapy in the clean bulk
    inter = vocab("drug_interactions")
    pairs = set(zip(inter["class_a"], inter["class_b"], strict=True)) | set(zip(inter["class_b"], inter["class_a"], strict=True))
    both = items[["rx", "drug_class"]].reset_index().merge(items[["rx", "drug_class"]].reset_index(), on="rx")
    interacting = np.array([pair in pairs for pair in zip(both["drug_class_x"], both["drug_class_y"], strict=True)],
                           dtype=bool)
    clash = both[(both["index_x"] > both["index_y"]).to_numpy() & interacting]
    items = items.drop(index=clash["index_x"].unique())
    chronic = items["icd"].isin(CHRONIC_ICD).to_numpy()
    items["days_supply"] = np.where(chronic, rng.integers(14, 31, len(items)), rng.integers(1, 8, len(items)))
    items["exception_reason"] = np.where(chronic, "chronic", None)
    items["daily_dose"] = np.minimum(d_typ[items["drug"]] * rng.choice([1, 2, 3], len(items)), d_max[items["drug"]])
    items["unit"] = drugs["unit"].to_numpy()[items["drug"]]
    items["of_drug"] = drugs["code"].to_numpy()[items["drug"]]
    items["source_id"] = p.next_ids("RXI", len(items))
    traced = rng.random(len(items)) < 0.3
    product = (pd.util.hash_array(items["of_drug"].to_numpy()) % 10**7).astype(np.int64)
    items["trace_code"] = np.where(traced, np.char.add(zfill(product.astype(str), 7),
                                                        zfill(np.arange(len(items)).astype(str), 13)), None)
    emit_prescriptions(p, rx[rx["rx"].isin(items["rx"])], items)


def emit_prescriptions(p: Province, rx: pd.DataFrame, items: pd.DataFrame) -> None:
    w = p.writer
    w.add_nodes("Prescription", pd.DataFrame({"source_system": rx["source_system"],
                                              "source_id": rx["rx"].str.split(":").str[1],
                                              "occurred_at": rx["occurred_at"]}))
    w.add_edges("in_encounter", rx["rx"], rx["key"], "Prescription", rx["class"])
    w.add_edges("attended_by", rx["rx"], rx["physician"], "Prescription", "Physician")
    keys = items["source_system"] + ":" + items["source_id"]
    w.add_nodes("PrescriptionItem", items[["source_system", "source_id", "daily_dose", "unit", "days_supply",
                                           "exception_reason", "trace_code"]])
    w.add_edges("item_of", keys, items["rx"], "PrescriptionItem", "Prescription")
    w.add_edges("of_drug", keys, items["of_drug"], "PrescriptionItem", "Drug")


def lab_results(p: Province) -> None:
    rng = p.rng
    enc = p.encounters
    tests = vocab("lab_tests")
    low, high = numeric(tests, "ref_low", 0).to_numpy(), numeric(tests, "ref_high", 1).to_numpy()
    window = numeric(tests, "recognition_days", 30).to_numpy()
    gets = rng.random(len(enc)) < 0.35
    e = enc[gets]
    n_tests = rng.choice([1, 2], len(e), p=[0.7, 0.3])
    res = e.loc[np.repeat(e.index.to_numpy(), n_tests)].reset_index(drop=True)
    res["test"] = rng.integers(0, len(tests), len(res))
    res = res.drop_duplicates(["key", "test"])
    # Clean bulk: the same test for the same person never repeats inside its mutual-recognition window.
    res = res.sort_values(["person", "test", "occurred_at"], kind="stable")
    prev = res.groupby(["person", "test"])["occurred_at"].shift()
    gap = (res["occurred_at"] - prev).dt.days
    res = res[~(gap < window[res["test"]] + 1).fillna(False).to_numpy()].reset_index(drop=True)
    span = high[res["test"]] - low[res["test"]]
    value = low[res["test"]] + span * rng.normal(0.5, 0.35, len(res))
    res["value"] = np.round(value, 2)
    res["abnormal"] = (value < low[res["test"]]) | (value > high[res["test"]])
    res["unit"] = tests["unit"].to_numpy()[res["test"]]
    res["of_test"] = tests["code"].to_numpy()[res["test"]]
    res["occurred_at"] = res["occurred_at"] + pd.Timedelta(minutes=30)
    emit_lab_results(p, res)


def emit_lab_results(p: Province, res: pd.DataFrame) -> None:
    res = res.copy()
    res["source_id"] = p.next_ids("LAB", len(res))
    keys = res["source_system"] + ":" + res["source_id"]
    p.writer.add_nodes("LabResult", res[["source_system", "source_id", "occurred_at", "value", "unit", "abnormal"]])
    p.writer.add_edges("in_encounter", keys, res["key"], "LabResult", res["class"])
    p.writer.add_edges("of_test", keys, res["of_test"], "LabResult", "LabTest")


def appointments(p: Province) -> None:
    rng = p.rng
    enc = p.encounters
    hosp = p.inst[p.inst["kind"].isin(["Hospital2", "Hospital3"])]["key"]
    e = enc[(enc["class"] == "OutpatientEncounter") & enc["institution"].isin(hosp)]
    e = e[rng.random(len(e)) < 0.3]
    appt = pd.DataFrame({"person": e["person"], "slot_at": e["occurred_at"], "department": e["department"],
                         "attendance": "attended"})
    no_show = appt.sample(frac=0.05, random_state=int(rng.integers(1 << 31))).assign(attendance="no_show")
    # Three no-shows put a resident on the no-show list (appointment_abuse): the clean bulk stays below it
    # however many visits a resident makes.
    no_show = no_show[no_show.groupby("person").cumcount() < 2]
    no_show["slot_at"] = no_show["slot_at"] + pd.Timedelta(days=14)
    appt = pd.concat([appt, no_show], ignore_index=True)
    appt["occurred_at"] = appt["slot_at"] - pd.to_timedelta(rng.integers(1, 8, len(appt)), unit="D")
    emit_appointments(p, appt)


def emit_appointments(p: Province, appt: pd.DataFrame) -> None:
    appt = appt.copy()
    appt["source_system"] = "YYGH"  # the provincial appointment platform (预约挂号平台)
    appt["source_id"] = p.next_ids("AP", len(appt))
    keys = "YYGH:" + appt["source_id"]
    p.writer.add_nodes("Appointment", appt[["source_system", "source_id", "occurred_at", "slot_at", "attendance"]])
    p.writer.add_edges("of_patient", keys, registry_record(p, appt["person"]), "Appointment", "Resident")
    p.writer.add_edges("in_department", keys, appt["department"], "Appointment", "Department")


def documents(p: Province) -> None:
    rng = p.rng
    enc = p.encounters
    e = enc[(enc["class"] == "InpatientEncounter") | (rng.random(len(enc)) < 0.1)]
    doc_type = np.where(e["class"] == "InpatientEncounter", "出院小结 discharge summary", "门(急)诊病历 outpatient record")
    frame = pd.DataFrame({"source_system": e["source_system"], "source_id": p.next_ids("DOC", len(e)),
                          "doc_type": doc_type, "title_text": doc_type, "occurred_at": e["ended_at"].fillna(e["occurred_at"])})
    keys = frame["source_system"] + ":" + frame["source_id"]
    p.writer.add_nodes("Document", frame)
    p.writer.add_edges("in_encounter", keys, e["key"], "Document", e["class"])
    p.writer.add_edges("of_patient", keys, e["record"], "Document", "Resident")


def _expertise(subject_code: str, rng: np.random.Generator) -> str | None:
    """擅长: two or three conditions of the department's subject from the built-in knowledge base."""
    names = [c.name for c in load_knowledge().conditions if c.subject_code == subject_code]
    if not names:
        return None
    picked = rng.choice(names, size=min(3, len(names)), replace=False)
    return "擅长" + "、".join(picked) + "的诊治"


def reference_data(p: Province) -> None:
    kb = load_knowledge()
    write_knowledge(p.writer, list(kb.conditions), kb, source=BUILTIN, with_builtin=True)
    vac = vocab("vaccines")
    p.writer.add_nodes("Vaccine", pd.DataFrame({"code": vac["code"], "name": vac["name_zh"], "name_en": vac["name_en"]}))
    food = vocab("food_products")
    p.writer.add_nodes("FoodProduct", pd.DataFrame({"code": food["code"], "name": food["name_zh"],
                                                    "name_en": food["name_en"],
                                                    "pathogen": food["typical_pathogen"].replace("", None)}))

"""The catalog of named queries: every Cypher statement services may run, in one place.

Queries use the subset of Cypher both engines agree on (single labels, parameters for every
value, bounded paths). Labels and properties come from the ontology (a test checks each one).
A parameter typed ``class:<Root>`` takes a class name and is expanded, through the ontology's
class hierarchy, into the list ``$classes`` (asking for Institution includes Hospital).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from graph.columnar import Fallback
from graph.narrowing import NARROW, Predicate, render
from graph.scan import NotScannable, plan_of, return_items
from ontology.errors import QueryParameterError, UnknownQuery, did_you_mean
from ontology.model import Ontology

_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "date": (dt.date,), "dateTime": (dt.datetime,),
    "strings": (list, tuple),
}


@dataclass(frozen=True)
class Slice:
    """The anchor of a query each of whose rows belongs to one anchor node (an encounter, a prescription),
    and the required time property the statement filters it on: ``$slice_from <= property < $slice_to``.

    A store whose engine holds a whole result in a bounded buffer (the embedded one) runs such a query in
    slices of the property's range and concatenates them; others run one slice. ``column`` names the
    returned column holding the property, if any: a rule whose event time is that column lets the engine
    apply a backtest's period."""

    cls: str
    prop: str
    column: str | None = None


@dataclass(frozen=True)
class Lookup:
    """Columns of a table smaller than the query's rows (practitioners with their licences, institutions with
    theirs, each resident record's master person) that the store joins to every row of a large query on the
    key column ``on``, outside the engine: at 1M encounters LadybugDB took 17.2 s to join practitioners and
    institutions per encounter, the engine's rows and a DuckDB join 6.7 s.

    ``on`` is a column of the statement's rows or of an earlier lookup. Where the lookup has no row for a
    row's key, or a null, the row gets null, or the value ``absent`` gives for that column: a constant (a
    count of none is 0) or :class:`Fallback`, the value of another of the row's columns."""

    on: str
    cypher: str
    absent: dict[str, Any] = field(default_factory=dict)
    scan: bool = False
    """A store may answer the statement from table scans, as a query's (``NamedQuery.scan``)."""

    def __post_init__(self) -> None:
        if self.scan:
            try:
                plan_of(self.cypher)
            except NotScannable as exc:
                raise ValueError(f"lookup on '{self.on}' is declared scan but {exc}") from None


@dataclass(frozen=True)
class Pairs:
    """Pairs of a query's rows, formed by the store outside the engine: every two rows that are equal, and
    not null, on each ``within`` column, where the first row comes strictly before the second in ``order``
    (columns compared left to right) and the two differ on each ``differ`` column.

    A paired row has the ``within`` columns once, then every other column twice: ``first_<column>`` of the
    earlier row and ``second_<column>`` of the later. Pairing a person's records inside the engine (collect,
    then unwind twice; or two chains from the master node) held every pair in LadybugDB's buffer pool: at
    10M encounters the master-index pair rules filled 12 GiB."""

    within: tuple[str, ...]
    order: tuple[str, ...]
    differ: tuple[str, ...] = ()
    names: tuple[str, str] = ("first_{}", "second_{}")
    """How the earlier and the later row's columns are named (``drug`` → ``drug_a``, ``drug_b``: ``"{}_a"``)."""

    def columns(self, rows: dict[str, str]) -> dict[str, str]:
        """Paired column → type, from the rows' column → type."""
        unknown = set(self.within + self.order + self.differ) - set(rows)
        if unknown:
            raise ValueError(f"pairs name columns the rows do not have: {sorted(unknown)}")
        rest = [c for c in rows if c not in self.within]
        earlier, later = self.names
        return ({c: rows[c] for c in self.within} | {earlier.format(c): rows[c] for c in rest}
                | {later.format(c): rows[c] for c in rest})


@dataclass(frozen=True)
class Counted:
    """A query's rows grouped by the store outside the engine: a row per distinct combination of the ``by``
    columns (a null is a value, as Cypher groups) and, for each ``distinct`` column → the rows' column it
    counts, the number of distinct non-null values in the group, as ``count(DISTINCT …)``. Counting the drugs
    of 10.8M prescription items inside LadybugDB took 33–49 s (``docs/rules.md``)."""

    by: tuple[str, ...]
    distinct: dict[str, str]

    def columns(self, rows: dict[str, str]) -> dict[str, str]:
        """Counted column → type, from the rows' column → type."""
        unknown = set(self.by + tuple(self.distinct.values())) - set(rows)
        if unknown:
            raise ValueError(f"counts name columns the rows do not have: {sorted(unknown)}")
        return {c: rows[c] for c in self.by} | dict.fromkeys(self.distinct, "integer")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    cypher: str
    params: dict[str, str] = field(default_factory=dict)
    ordered: bool = False
    """True when the statement has ORDER BY: results compare in order across engines."""
    columns: dict[str, str] = field(default_factory=dict)
    """Types of returned columns that are not a plain ``alias.property`` (counts, lists): ``integer``,
    ``double``, ``string``, ``strings``, ``boolean``, ``date``, ``dateTime``. Supervision rules
    type-check their conditions against these and the ontology (see :func:`result_columns`)."""
    digested: dict[str, str] = field(default_factory=dict)
    """Parameters (lists of strings) compared with an encrypted property's digest: parameter → property.
    The store replaces the caller's values by their keyed digests."""
    sealed: dict[str, str] = field(default_factory=dict)
    """Returned columns holding an encrypted property: column → ``Table.property``. The store opens them."""
    lookups: tuple[Lookup, ...] = ()
    """Tables joined to the statement's rows by the store (see :class:`Lookup`); the query's columns are the
    statement's, then each lookup's other columns."""
    slice_by: Slice | None = None
    """The statement filters its anchor on ``$slice_from <= property < $slice_to`` (see :class:`Slice`)."""
    pairs: Pairs | None = None
    """The store pairs the rows (after the lookups) and returns the pairs (see :class:`Pairs`)."""
    counted: Counted | None = None
    """The store groups the rows (after the lookups) and returns a row per group (see :class:`Counted`)."""
    narrowable: tuple[str, ...] = ()
    """Returned columns a condition may narrow the rows on, inside the engine (see ``graph/narrowing.py``):
    their expressions are bound where the statement marks ``/*narrow*/``, and filtering there keeps the
    other rows' values as they are (before an aggregate, only columns of the group's key)."""
    looked_up_as: dict[str, str] = field(default_factory=dict)
    """Lookup columns that are a property of a node the statement binds, the lookup being keyed on that
    node's key: column → the property's expression in the statement. Such a column may be narrowable
    without being returned by the engine."""
    scan: bool = False
    """A store may answer the statement from whole-table scans joined outside the engine (``graph/scan.py``),
    ignoring any narrowing: for queries returning a row for most of a large table."""

    def __post_init__(self) -> None:
        if bool(self.narrowable) != (NARROW in self.cypher):
            raise ValueError(f"query '{self.name}': narrowable columns and the {NARROW} mark go together")
        missing = set(self.narrowable) - set(self._expressions())
        if missing:
            raise ValueError(f"query '{self.name}' does not return narrowable columns {sorted(missing)}")
        if self.pairs and self.counted:
            raise ValueError(f"query '{self.name}' either pairs or counts its rows")
        if self.scan:
            try:
                plan_of(self.cypher)
            except NotScannable as exc:
                raise ValueError(f"query '{self.name}' is declared scan but {exc}") from None
            if self.slice_by and plan_of(self.cypher).window is None:
                raise ValueError(f"query '{self.name}': a sliced scan must bound its anchor in the WHERE clause")
        looked_up = {c for lookup in self.lookups for c in return_items(lookup.cypher)}
        if set(self.looked_up_as) - looked_up:
            raise ValueError(f"query '{self.name}': no lookup returns {sorted(set(self.looked_up_as) - looked_up)}")

    def _expressions(self) -> dict[str, str]:
        return return_items(self.cypher) | self.looked_up_as

    def statement(self, narrowing: Predicate | None = None) -> tuple[str, dict[str, Any]]:
        """The Cypher text and extra parameters, narrowed to rows where ``narrowing`` may hold."""
        if narrowing is None or narrowing is True or not self.narrowable:
            return self.cypher, {}
        expressions = {name: expr for name, expr in self._expressions().items() if name in self.narrowable}
        text, params = render(narrowing, expressions)
        return self.cypher.replace(NARROW, text), params

    def bind(self, onto: Ontology, values: dict[str, Any]) -> dict[str, Any]:
        """Check and convert the caller's values; expand ``class:`` parameters."""
        unknown = set(values) - set(self.params)
        if unknown:
            name = sorted(unknown)[0]
            raise QueryParameterError(
                f"query '{self.name}' has no parameter '{name}' {did_you_mean(name, self.params)}",
                query=self.name)
        bound: dict[str, Any] = {}
        for pname, ptype in self.params.items():
            if pname not in values:
                raise QueryParameterError(f"query '{self.name}' needs parameter '{pname}' ({ptype})",
                                          query=self.name, parameter=pname)
            value = values[pname]
            if ptype.startswith("class:"):
                root = ptype.split(":", 1)[1]
                if value not in onto.classes or not onto.is_a(value, root):
                    raise QueryParameterError(
                        f"'{pname}' must be {root} or a subclass of it "
                        f"{did_you_mean(str(value), onto.descendants(root))}", query=self.name)
                bound["classes"] = sorted(onto.descendants(value))
                continue
            if ptype == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if ptype == "date" and isinstance(value, str):
                value = _parse(dt.date.fromisoformat, value, pname, self.name)
            if ptype == "dateTime" and isinstance(value, str):
                value = _parse(dt.datetime.fromisoformat, value, pname, self.name)
            if ptype == "dateTime" and type(value) is dt.date:
                value = dt.datetime.combine(value, dt.time())
            if not isinstance(value, _PARAM_TYPES[ptype]) or (ptype == "integer" and isinstance(value, bool)):
                raise QueryParameterError(f"'{pname}' must be {ptype}, got {value!r}", query=self.name)
            bound[pname] = list(value) if ptype == "strings" else value
        return bound


def _parse(fn: Any, value: str, pname: str, query: str) -> Any:
    try:
        return fn(value)
    except ValueError:
        raise QueryParameterError(f"'{pname}' must be an ISO date, got {value!r}", query=query) from None


_MASTER_OF_RECORD = Lookup("resident", """MATCH (r:Resident)<-[:link_record]-(l:PersonLink)-[:link_master]->(m:MasterPerson)
    WHERE l.state = 'MATCH' RETURN r.key AS resident, m.key AS master_id""", scan=True)
"""The master person of each linked resident record (a record the index never linked gets none)."""


_PRESCRIBED_DRUGS = """MATCH (it:PrescriptionItem)-[:item_of]->(rx:Prescription)-[:in_encounter]->(e:Encounter),
          (it)-[:of_drug]->(g:Drug)
    WHERE rx.occurred_at >= $slice_from AND rx.occurred_at < $slice_to
    RETURN rx.key AS prescription, e.key AS encounter, rx.occurred_at AS occurred_at, g.key AS drug,
           g.drug_class AS class"""
"""The drug of each item of a prescription: counted and paired per prescription by the store."""


QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in [
        NamedQuery(
            "institutions_in_division",
            "机构按区划 Institutions of a class (and its subclasses) located in a division",
            """MATCH (i:Institution)-[:located_in]->(d:Division)
               WHERE d.code = $division_code AND i.class IN $classes
               RETURN i.key AS key, i.class AS class, i.name AS name
               ORDER BY key""",
            {"division_code": "string", "cls": "class:Institution"}, ordered=True,
        ),
        NamedQuery(
            "encounters_of_resident",
            "居民就诊记录 A resident record's encounters with institution and department",
            """MATCH (e:Encounter)-[:of_patient]->(r:Resident {key: $resident_key}),
                     (e)-[:at_institution]->(i:Institution)
               RETURN e.key AS encounter, e.class AS class, e.occurred_at AS occurred_at, i.name AS institution
               ORDER BY occurred_at, encounter""",
            {"resident_key": "string"}, ordered=True,
        ),
        NamedQuery(
            "institutions_visited",
            "两跳查询 Institutions a resident record visited (resident ← encounter → institution)",
            """MATCH (r:Resident {key: $resident_key})<-[:of_patient]-(e:Encounter)-[:at_institution]->(i:Institution)
               RETURN i.key AS key, i.name AS name, count(e) AS encounters
               ORDER BY encounters DESC, key""",
            {"resident_key": "string"}, ordered=True,
        ),
        NamedQuery(
            "residents_in_division",
            "区划内居民数 Resident records per county of residence within a prefecture or province",
            """MATCH (r:Resident)-[:resides_in]->(d:Division)
               WHERE d.code STARTS WITH $code_prefix
               RETURN d.code AS code, d.name AS name, count(r) AS residents
               ORDER BY code""",
            {"code_prefix": "string"}, ordered=True,
        ),
        NamedQuery(
            "practitioners_of_institution",
            "机构医务人员 Practitioners employed by an institution with their licences",
            """MATCH (p:Practitioner)-[:employed_by]->(i:Institution {key: $institution_key})
               OPTIONAL MATCH (p)-[:holds_license]->(l:License)
               RETURN p.key AS key, p.name AS name, p.class AS class, l.code AS license, l.valid_to AS valid_to
               ORDER BY key, license""",
            {"institution_key": "string"}, ordered=True,
        ),
        NamedQuery(
            "diagnoses_by_code_prefix",
            "按 ICD-10 统计诊断 Diagnosis counts by ICD-10 code for codes with a prefix",
            """MATCH (d:Diagnosis)
               WHERE d.icd10_code STARTS WITH $prefix
               RETURN d.icd10_code AS code, count(d) AS diagnoses
               ORDER BY code""",
            {"prefix": "string"}, ordered=True,
        ),
        NamedQuery(
            "units_of_donation",
            "献血去向 Units made from a donation and the residents who received them",
            """MATCH (u:BloodUnit)-[:derived_from]->(b:BloodDonation {key: $din})
               OPTIONAL MATCH (t:Transfusion)-[:of_unit]->(u)
               OPTIONAL MATCH (t)-[:of_patient]->(r:Resident)
               RETURN u.key AS unit, u.component AS component, u.status AS status, r.key AS recipient
               ORDER BY unit, recipient""",
            {"din": "string"}, ordered=True,
        ),
        NamedQuery(
            "recipients_of_donor",
            "献血者追溯 Lookback, five hops: a donor's donations → units → transfusions → recipients → their county",
            """MATCH (d:Resident {key: $donor_key})<-[:of_patient]-(b:BloodDonation)<-[:derived_from]-(u:BloodUnit)
                     <-[:of_unit]-(t:Transfusion)-[:of_patient]->(r:Resident)-[:resides_in]->(c:Division)
               RETURN b.key AS donation, u.key AS unit, t.key AS transfusion, r.key AS recipient, c.code AS county
               ORDER BY donation, unit, transfusion""",
            {"donor_key": "string"}, ordered=True,
        ),
        NamedQuery(
            "donor_of_donation",
            "献血者 The donor record and date of a donation (by DIN)",
            """MATCH (b:BloodDonation {key: $din})-[:of_patient]->(d:Resident)
               RETURN d.key AS donor, b.key AS donation, b.occurred_at AS donated_at, b.screening AS screening""",
            {"din": "string"},
        ),
        NamedQuery(
            "donations_of_donor",
            "献血记录 Every donation of a donor record, oldest first",
            """MATCH (b:BloodDonation)-[:of_patient]->(d:Resident {key: $donor_key})
               RETURN b.key AS donation, b.occurred_at AS donated_at, b.screening AS screening
               ORDER BY donated_at, donation""",
            {"donor_key": "string"}, ordered=True,
        ),
        NamedQuery(
            "units_made_from",
            "血液成分 The units (components) made from one donation",
            """MATCH (u:BloodUnit)-[:derived_from]->(b:BloodDonation {key: $din})
               RETURN b.key AS donation, u.key AS unit, u.component AS component, u.status AS status,
                      u.expires_on AS expires_on
               ORDER BY unit""",
            {"din": "string"}, ordered=True,
        ),
        NamedQuery(
            "unit_whereabouts",
            "血液去向 Where one unit is: its store, its transfusions, their recipients and reactions",
            """MATCH (u:BloodUnit {key: $unit})
               OPTIONAL MATCH (u)-[:stored_at]->(s:Institution)
               OPTIONAL MATCH (t:Transfusion)-[:of_unit]->(u)
               OPTIONAL MATCH (t)-[:of_patient]->(r:Resident)
               OPTIONAL MATCH (x:TransfusionReaction)-[:reaction_to]->(t)
               RETURN u.key AS unit, s.key AS stored_at, t.key AS transfusion, t.occurred_at AS transfused_at,
                      r.key AS recipient, x.key AS reaction, x.reaction_type AS reaction_type, x.serious AS serious""",
            {"unit": "string"},
        ),
        NamedQuery(
            "transfusions_of_recipient",
            "输血溯源 A recipient's transfusions back to units, donations and donors, with reactions",
            """MATCH (r:Resident {key: $recipient_key})<-[:of_patient]-(t:Transfusion)-[:of_unit]->(u:BloodUnit)
                     -[:derived_from]->(b:BloodDonation)-[:of_patient]->(d:Resident)
               OPTIONAL MATCH (x:TransfusionReaction)-[:reaction_to]->(t)
               RETURN t.key AS transfusion, t.occurred_at AS transfused_at, u.key AS unit, u.component AS component,
                      b.key AS donation, b.occurred_at AS donated_at, d.key AS donor, x.key AS reaction,
                      x.reaction_type AS reaction_type, x.serious AS serious""",
            {"recipient_key": "string"},
        ),
        NamedQuery(
            "cases_by_diagnosis",
            "病例 Resident records diagnosed with an ICD-10 code in a period (encounter date)",
            """MATCH (g:Diagnosis)-[:in_encounter]->(e:Encounter)-[:of_patient]->(r:Resident)
               WHERE g.icd10_code = $icd10 AND e.occurred_at >= $since AND e.occurred_at < $until
               RETURN DISTINCT r.key AS resident""",
            {"icd10": "string", "since": "dateTime", "until": "dateTime"},
        ),
        NamedQuery(
            "case_places",
            "病例时空分布 Cases whose ICD-10 code starts with a prefix, in a period: county of residence and time",
            """MATCH (g:Diagnosis)-[:in_encounter]->(e:Encounter)-[:of_patient]->(r:Resident)-[:resides_in]->(c:Division)
               WHERE g.icd10_code STARTS WITH $icd10 AND e.occurred_at >= $since AND e.occurred_at < $until
               RETURN r.key AS resident, c.code AS county, e.occurred_at AS occurred_at""",
            {"icd10": "string", "since": "dateTime", "until": "dateTime"},
        ),
        NamedQuery(
            "records_sharing_id_number",
            "同一身份证号的档案 Other resident records carrying the same resident id number",
            """MATCH (r:Resident), (o:Resident)
               WHERE r.key IN $residents AND r.id_number_digest IS NOT NULL AND o.id_number_digest = r.id_number_digest
               RETURN r.key AS resident, o.key AS record""",
            {"residents": "strings"},
        ),
        NamedQuery(
            "exposures_of_residents",
            "暴露史 Meals and exposures of residents: where, when, and the lot when known",
            """MATCH (x:Exposure)-[:of_patient]->(r:Resident)
               WHERE r.key IN $residents
               OPTIONAL MATCH (x)-[:at_institution]->(v:Institution)
               OPTIONAL MATCH (x)-[:exposed_to]->(l:FoodLot)
               RETURN r.key AS resident, x.key AS exposure, x.occurred_at AS occurred_at, v.key AS venue,
                      l.key AS lot""",
            {"residents": "strings"},
        ),
        NamedQuery(
            "exposures_to_lots",
            "批次暴露 Residents recorded as exposed to any of some food lots",
            """MATCH (x:Exposure)-[:exposed_to]->(l:FoodLot), (x)-[:of_patient]->(r:Resident)
               WHERE l.key IN $lots
               RETURN r.key AS resident, x.key AS exposure, x.occurred_at AS occurred_at, l.key AS lot""",
            {"lots": "strings"},
        ),
        NamedQuery(
            "samples_of_lots",
            "抽检结果 Food samples taken from lots, with the laboratory result",
            """MATCH (s:FoodSample)-[:sample_of]->(l:FoodLot)
               WHERE l.key IN $lots
               RETURN l.key AS lot, s.key AS sample, s.positive AS positive, s.pathogen AS pathogen,
                      s.occurred_at AS sampled_at""",
            {"lots": "strings"},
        ),
        NamedQuery(
            "food_deliveries",
            "食品流向 Every delivery in a period: lot carried, from, to, date",
            """MATCH (d:Delivery)-[:carries]->(l:FoodLot), (d)-[:delivered_from]->(a:Institution),
                     (d)-[:delivered_to]->(b:Institution)
               WHERE d.occurred_at >= $since AND d.occurred_at < $until
               RETURN d.key AS delivery, l.key AS lot, a.key AS from_key, b.key AS to_key, d.occurred_at AS occurred_at,
                      d.quantity AS quantity""",
            {"since": "dateTime", "until": "dateTime"},
        ),
        NamedQuery(
            "food_lots",
            "食品批次 Every food lot: producer, product, and the lots it was made from",
            """MATCH (l:FoodLot)
               OPTIONAL MATCH (l)-[:produced_by]->(s:Institution)
               OPTIONAL MATCH (l)-[:lot_of_food]->(f:FoodProduct)
               OPTIONAL MATCH (l)-[:made_from]->(m:FoodLot)
               RETURN l.key AS lot, s.key AS producer, f.key AS product, m.key AS made_from""",
        ),
        NamedQuery(
            "adverse_events_by_lot",
            "批号不良反应 Vaccinations and adverse events (AEFI) per vaccine lot",
            """MATCH (v:Vaccination)-[:with_lot]->(l:VaccineLot)-[:lot_of_vaccine]->(g:Vaccine)
               OPTIONAL MATCH (a:AdverseEvent)-[:following]->(v)
               RETURN g.key AS vaccine, g.name AS vaccine_name, l.key AS lot, l.expires_on AS expires_on,
                      l.recalled AS recalled, count(DISTINCT v.key) AS vaccinations,
                      count(DISTINCT a.key) AS adverse_events, count(DISTINCT CASE WHEN a.serious THEN a.key END)
                      AS serious""",
        ),
        NamedQuery(
            "repeated_trace_codes",
            "追溯码重复 Dispensings whose drug trace code was dispensed more than once",
            """MATCH (i:PrescriptionItem)
               WHERE i.trace_code IS NOT NULL
               WITH i.trace_code AS code, count(*) AS times
               WHERE times > 1
               MATCH (j:PrescriptionItem)-[:item_of]->(p:Prescription)-[:in_encounter]->(e:Encounter)
                     -[:at_institution]->(h:Institution)
               WHERE j.trace_code = code
               RETURN code, times, j.key AS item, p.key AS prescription, e.occurred_at AS dispensed_at,
                      h.key AS institution""",
        ),
        NamedQuery(
            "blood_inventory",
            "血液库存 Every blood unit with its store, status, expiry and donation date",
            """MATCH (u:BloodUnit)-[:stored_at]->(s:Institution)
               OPTIONAL MATCH (u)-[:derived_from]->(b:BloodDonation)
               RETURN u.key AS unit, u.component AS component, u.abo_rh AS abo_rh, u.status AS status,
                      u.expires_on AS expires_on, s.key AS store, b.occurred_at AS donated_at""",
        ),
        NamedQuery(
            "blood_stock_levels",
            "血液库存水平 Units in stock per store, component and ABO/Rh group (groups the store has held)",
            """MATCH (u:BloodUnit)-[:stored_at]->(s:Institution)
               RETURN s.key AS store, u.component AS component, u.abo_rh AS abo_rh,
                      count(CASE WHEN u.status = 'in_stock' THEN u.key END) AS units, count(u) AS handled""",
            columns={"units": "integer", "handled": "integer"},
        ),
        NamedQuery(
            "transfusion_reactions",
            "输血不良反应 Transfusion reactions with unit, donation, donor and the facility that transfused",
            """MATCH (x:TransfusionReaction)-[:reaction_to]->(t:Transfusion)-[:of_unit]->(u:BloodUnit)
                     -[:derived_from]->(b:BloodDonation)-[:of_patient]->(d:Resident)
               OPTIONAL MATCH (t)-[:in_encounter]->(e:Encounter)-[:at_institution]->(h:Institution)
               RETURN x.key AS reaction, x.reaction_type AS reaction_type, x.occurred_at AS occurred_at,
                      x.serious AS serious, u.key AS unit, b.key AS donation, d.key AS donor, h.key AS facility""",
        ),
        NamedQuery(
            "vaccinations_of_lot",
            "批号接种 Vaccinations given from a vaccine lot, with adverse events",
            """MATCH (v:Vaccination)-[:with_lot]->(l:VaccineLot {key: $lot})
               OPTIONAL MATCH (a:AdverseEvent)-[:following]->(v)
               RETURN v.key AS vaccination, v.occurred_at AS occurred_at, a.key AS adverse_event
               ORDER BY vaccination, adverse_event""",
            {"lot": "string"}, ordered=True,
        ),
        NamedQuery(
            "deliveries_of_lot",
            "批次流向 Deliveries that carried a food lot: from, to, date",
            """MATCH (d:Delivery)-[:carries]->(l:FoodLot {key: $lot}),
                     (d)-[:delivered_from]->(a:Institution), (d)-[:delivered_to]->(b:Institution)
               RETURN d.key AS delivery, a.key AS from_key, b.key AS to_key, d.occurred_at AS occurred_at
               ORDER BY occurred_at, delivery""",
            {"lot": "string"}, ordered=True,
        ),
        NamedQuery(
            "possible_matches",
            "主索引待审核 Person links awaiting review (POSSIBLE_MATCH), most probable first",
            """MATCH (l:PersonLink)-[:link_record]->(r:Resident), (l)-[:link_master]->(m:MasterPerson)
               WHERE l.state = 'POSSIBLE_MATCH'
               RETURN l.key AS link, r.key AS record, m.key AS master_id, l.probability AS probability,
                      l.match_weight AS match_weight, l.evidence AS evidence, l.linked_at AS linked_at
               ORDER BY probability DESC, link LIMIT $limit""",
            {"limit": "integer"}, ordered=True,
        ),
        NamedQuery(
            "same_person_records",
            "同一人的其他档案 The other source records the master person index links to the same person",
            """MATCH (r:Resident {key: $resident})<-[:link_record]-(l:PersonLink)-[:link_master]->(m:MasterPerson),
                     (m)<-[:link_master]-(o:PersonLink)-[:link_record]->(x:Resident)
               WHERE l.state = 'MATCH' AND o.state = 'MATCH' AND x.key <> r.key
               RETURN r.key AS resident, x.key AS record""",
            {"resident": "string"},
        ),
        NamedQuery(
            "identity_history",
            "主索引变更历史 Identity events concerning a master id or a record key, oldest first",
            """MATCH (e:IdentityEvent) WHERE $subject IN e.masters OR $subject IN e.records
               RETURN e.key AS event, e.action AS action, e.actor AS actor, e.reason AS reason,
                      e.occurred_at AS occurred_at, e.masters AS masters, e.records AS records
               ORDER BY event""",
            {"subject": "string"}, ordered=True,
        ),
        NamedQuery(
            "identity_changes",
            "主索引变更内容 Identity events concerning a subject with their change sets (for undo)",
            """MATCH (e:IdentityEvent) WHERE $subject IN e.masters OR $subject IN e.records
               RETURN e.key AS event, e.action AS action, e.masters AS masters, e.records AS records,
                      e.change AS change
               ORDER BY event""",
            {"subject": "string"}, ordered=True,
        ),
        NamedQuery(
            "identity_events",
            "主索引事件流 Identity events after an event id, oldest first",
            """MATCH (e:IdentityEvent) WHERE e.key > $since
               RETURN e.key AS event, e.action AS action, e.actor AS actor, e.reason AS reason,
                      e.occurred_at AS occurred_at, e.masters AS masters, e.records AS records
               ORDER BY event LIMIT $limit""",
            {"since": "string", "limit": "integer"}, ordered=True,
        ),
        NamedQuery(
            "practitioner_licences",
            "医务人员注册 A practitioner's licences with validity, status, scope and the institution registered at",
            """MATCH (p:Practitioner {key: $code})-[:holds_license]->(l:License)
               OPTIONAL MATCH (l)-[:registered_at]->(i:Institution)
               RETURN l.key AS licence, l.class AS class, l.status AS status,
                      l.registration_status AS registration_status, l.valid_from AS valid_from,
                      l.valid_to AS valid_to, l.practice_scope AS practice_scope,
                      l.licensed_subjects AS licensed_subjects, i.key AS institution, i.name AS institution_name
               ORDER BY licence""",
            {"code": "string"}, ordered=True,
        ),
        NamedQuery(
            "licence_holders",
            "执业证书持有人 The practitioners holding some licences (by 执业证书编码)",
            """MATCH (p:Practitioner)-[:holds_license]->(l:License)
               WHERE l.key IN $licences
               RETURN l.key AS licence, p.key AS practitioner
               ORDER BY licence, practitioner""",
            {"licences": "strings"}, ordered=True,
        ),
        NamedQuery(
            "practitioners_by_id_number",
            "同一身份证号的医务人员 Practitioners carrying any of some resident id numbers",
            """MATCH (p:Practitioner)
               WHERE p.id_number_digest IN $id_numbers
               RETURN p.key AS practitioner, p.id_number AS id_number
               ORDER BY practitioner""",
            {"id_numbers": "strings"}, ordered=True,
            digested={"id_numbers": "id_number"}, sealed={"id_number": "Practitioner.id_number"},
        ),
        NamedQuery(
            "institution_licences",
            "机构执业许可 An institution's licences with validity, status and licensed 诊疗科目",
            """MATCH (i:Institution {key: $uscc})-[:holds_license]->(l:License)
               RETURN l.key AS licence, l.class AS class, l.status AS status,
                      l.registration_status AS registration_status, l.valid_from AS valid_from,
                      l.valid_to AS valid_to, l.licensed_subjects AS licensed_subjects
               ORDER BY licence""",
            {"uscc": "string"}, ordered=True,
        ),
        NamedQuery(
            "registered_practitioners",
            "机构注册医师 Licences registered at an institution (注册执业机构) and who holds them",
            """MATCH (p:Practitioner)-[:holds_license]->(l:License)-[:registered_at]->(i:Institution {key: $uscc})
               RETURN p.key AS practitioner, p.name AS name, l.key AS licence, l.status AS status,
                      l.registration_status AS registration_status, l.valid_to AS valid_to
               ORDER BY practitioner, licence""",
            {"uscc": "string"}, ordered=True,
        ),
        # ---- supervision rules (rules/packs): candidate rows that a rule's condition then judges
        NamedQuery(
            "encounter_practice",
            "执业行为 Encounters with the attending practitioner's licence and the institution's licensed 诊疗科目",
            """MATCH (e:Encounter)-[:attended_by]->(p:Practitioner), (e)-[:at_institution]->(i:Institution),
                     (e)-[:in_department]->(d:Department)
               WHERE e.occurred_at >= $slice_from AND e.occurred_at < $slice_to
               RETURN e.key AS encounter, e.class AS encounter_class, e.occurred_at AS occurred_at,
                      p.key AS practitioner, i.key AS institution, d.key AS department""",
            slice_by=Slice("Encounter", "occurred_at", column="occurred_at"),
            scan=True,
            lookups=(
                Lookup("practitioner", """MATCH (p:Practitioner)
                    OPTIONAL MATCH (p)-[:holds_license]->(l:License)
                    OPTIONAL MATCH (l)-[:registered_at]->(r:Institution)
                    RETURN p.key AS practitioner, p.name AS practitioner_name, l.key AS licence,
                           l.registration_status AS registration_status, l.valid_to AS valid_to,
                           l.licensed_subjects AS licensed_subjects, r.key AS registered_at"""),
                Lookup("institution", """MATCH (i:Institution) OPTIONAL MATCH (i)-[:holds_license]->(il:License)
                    RETURN i.key AS institution, i.name AS institution_name, il.key AS institution_licence,
                           il.licensed_subjects AS institution_subjects"""),
                Lookup("department", """MATCH (d:Department)
                    RETURN d.key AS department, d.name AS department_name, d.subject_code AS subject_code"""),
            ),
        ),
        NamedQuery(
            "prescription_items_review",
            "处方审核明细 Prescription items with the drug's limits and the patient: birth date and pregnancy from the master "
            "index when built (any linked record), else from the prescribing record",
            """MATCH (it:PrescriptionItem)-[:item_of]->(rx:Prescription)-[:in_encounter]->(e:Encounter)
                     -[:of_patient]->(r:Resident), (it)-[:of_drug]->(g:Drug)
               WHERE rx.occurred_at >= $slice_from AND rx.occurred_at < $slice_to /*narrow*/
               RETURN rx.key AS prescription, e.key AS encounter, rx.occurred_at AS occurred_at, it.key AS item,
                      g.key AS drug, it.daily_dose AS daily_dose, it.unit AS unit, it.days_supply AS days_supply,
                      it.exception_reason AS exception_reason, r.key AS resident, r.pregnant AS record_pregnant,
                      r.birth_date AS record_birth_date""",
            columns={"pregnant_records": "integer"},
            slice_by=Slice("Prescription", "occurred_at", column="occurred_at"),
            scan=True,
            # The master index, per resident record and per master, once: joined per item, its two optional
            # matches and the count grouped on every column took 13.6 of 26.4 s at 1.08M items. The master of
            # each record is the lookup the pair queries share.
            lookups=(
                _MASTER_OF_RECORD,
                Lookup("master_id", """MATCH (m:MasterPerson) RETURN m.key AS master_id, m.birth_date AS birth_date""",
                       absent={"birth_date": Fallback("record_birth_date")}),
                # Per master, only those with a pregnant record: counted per resident record, the count took
                # 27.0 s at 3.4M records (10M encounters).
                Lookup("master_id", """MATCH (m:MasterPerson)<-[:link_master]-(o:PersonLink)-[:link_record]->(x:Resident)
                    WHERE o.state = 'MATCH' AND x.pregnant = true
                    RETURN m.key AS master_id, count(x.key) AS pregnant_records""", absent={"pregnant_records": 0}),
                # Per drug, once: each column the engine returns per item costs it (docs/engines.md). The
                # drug's limits still narrow the items inside the engine (looked_up_as).
                Lookup("drug", """MATCH (g:Drug)
                    RETURN g.key AS drug, g.name AS drug_name, g.drug_class AS drug_class, g.unit AS drug_unit,
                           g.max_daily_dose AS max_daily_dose, g.pregnancy_contraindicated AS pregnancy_contraindicated,
                           g.min_age AS min_age"""),
            ),
            looked_up_as={"drug_name": "g.name", "drug_class": "g.drug_class", "drug_unit": "g.unit",
                          "max_daily_dose": "g.max_daily_dose", "pregnancy_contraindicated": "g.pregnancy_contraindicated",
                          "min_age": "g.min_age"},
            narrowable=("prescription", "encounter", "item", "drug", "drug_name", "drug_class", "daily_dose", "unit",
                        "drug_unit", "max_daily_dose", "days_supply", "exception_reason", "pregnancy_contraindicated",
                        "min_age", "resident", "record_pregnant"),
        ),
        NamedQuery(
            "prescription_sizes",
            "处方药品数 Number of distinct drugs on each prescription",
            _PRESCRIBED_DRUGS,
            slice_by=Slice("Prescription", "occurred_at", column="occurred_at"),
            scan=True,
            counted=Counted(by=("prescription", "encounter", "occurred_at"), distinct={"drugs": "drug"}),
        ),
        NamedQuery(
            "prescription_drug_pairs",
            "处方药品对 Pairs of different drugs on one prescription, with their pharmacological classes",
            _PRESCRIBED_DRUGS,
            slice_by=Slice("Prescription", "occurred_at", column="occurred_at"),
            scan=True,
            # Formed inside the engine, the pairs filled a 12 GiB pool at 10M encounters, and a filter on the
            # shared prescription lost pairs on LadybugDB (docs/engines.md).
            pairs=Pairs(within=("prescription", "encounter", "occurred_at"), order=("drug",), names=("{}_a", "{}_b")),
        ),
        NamedQuery(
            "repeat_tests_across_institutions",
            "跨机构重复检查 Results of one test for one person (master index) at two institutions, earlier first",
            """MATCH (a:LabResult)-[:of_test]->(t:LabTest), (a)-[:in_encounter]->(e:Encounter)-[:of_patient]->(r:Resident),
                     (e)-[:at_institution]->(i:Institution)
               WHERE a.occurred_at >= $slice_from AND a.occurred_at < $slice_to
               RETURN r.key AS resident, t.key AS test, a.key AS result, a.occurred_at AS at, i.key AS institution,
                      e.key AS encounter, e.class AS encounter_class""",
            # No event-time column: a result before a backtest's period still pairs with one inside it.
            slice_by=Slice("LabResult", "occurred_at"),
            scan=True,
            # The test's name and window per test, not per result: each returned column costs the engine.
            lookups=(_MASTER_OF_RECORD, Lookup("test", """MATCH (t:LabTest)
                RETURN t.key AS test, t.name AS test_name, t.recognition_days AS recognition_days""")),
            pairs=Pairs(within=("master_id", "test", "test_name", "recognition_days"), order=("at",),
                        differ=("institution",)),
        ),
        NamedQuery(
            "overlapping_inpatient_stays",
            "住院重叠 Pairs of inpatient stays of one person (master index), the later one admitted before the first ends",
            """MATCH (s:Encounter)-[:of_patient]->(r:Resident), (s)-[:at_institution]->(i:Institution)
               WHERE s.class = 'InpatientEncounter' AND s.occurred_at >= $slice_from AND s.occurred_at < $slice_to
               RETURN r.key AS resident, s.key AS stay, s.occurred_at AS admitted, s.ended_at AS discharged,
                      i.key AS institution""",
            slice_by=Slice("Encounter", "occurred_at"),
            scan=True,
            lookups=(_MASTER_OF_RECORD,),
            pairs=Pairs(within=("master_id",), order=("admitted", "stay")),
        ),
        NamedQuery(
            "notifiable_diagnoses",
            "法定传染病诊断 Diagnoses of notifiable diseases with diagnosis and report times and the legal limit",
            """MATCH (g:Diagnosis)-[:of_disease]->(s:Disease), (g)-[:in_encounter]->(e:Encounter)
               WHERE s.report_limit_hours IS NOT NULL
               RETURN g.key AS diagnosis, e.key AS encounter, g.icd10_code AS icd10_code, s.name AS disease_name,
                      s.notifiable_class AS notifiable_class, s.report_limit_hours AS report_limit_hours,
                      g.occurred_at AS occurred_at, g.reported_at AS reported_at""",
        ),
        NamedQuery(
            "appointment_behaviour",
            "预约履约 Appointments per resident record: bookings, no-shows and the span of their slots",
            """MATCH (a:Appointment)-[:of_patient]->(r:Resident)
               WITH r, count(a) AS appointments, count(CASE WHEN a.attendance = 'no_show' THEN 1 END) AS no_shows,
                    min(a.slot_at) AS first_slot, max(a.slot_at) AS last_slot, max(a.occurred_at) AS occurred_at
               WHERE true /*narrow*/
               RETURN r.key AS resident, appointments, no_shows, first_slot, last_slot, occurred_at""",
            columns={"appointments": "integer", "no_shows": "integer", "first_slot": "dateTime", "last_slot": "dateTime",
                     "occurred_at": "dateTime"},
            narrowable=("resident", "appointments", "no_shows"),
        ),
        NamedQuery(
            "reactions_by_donor",
            "输血反应聚集 Transfusion reactions with the donor whose unit was transfused and that donor's reaction count",
            """MATCH (x:TransfusionReaction)-[:reaction_to]->(t:Transfusion)-[:of_unit]->(u:BloodUnit)
                     -[:derived_from]->(b:BloodDonation)-[:of_patient]->(d:Resident)
               WITH d, count(DISTINCT x.key) AS reactions
               MATCH (x:TransfusionReaction)-[:reaction_to]->(t:Transfusion)-[:of_unit]->(u:BloodUnit)
                     -[:derived_from]->(b:BloodDonation)-[:of_patient]->(d)
               RETURN d.key AS donor, reactions, x.key AS reaction, x.reaction_type AS reaction_type,
                      x.occurred_at AS occurred_at, u.key AS unit, b.key AS donation""",
            columns={"reactions": "integer"},
        ),
        NamedQuery(
            "master_index_links",
            "主索引规模 Number of MATCH links in the master person index (0 when it was never built)",
            """MATCH (l:PersonLink) WHERE l.state = 'MATCH' RETURN count(l) AS links""",
            columns={"links": "integer"},
        ),
        NamedQuery(
            "alerts_of_rule",
            "规则预警 Every alert of a rule with its dedup key, state and times (for dedup and re-evaluation)",
            """MATCH (a:Alert) WHERE a.rule_id = $rule_id
               RETURN a.key AS code, a.dedup_key AS dedup_key, a.alert_state AS alert_state,
                      a.occurred_at AS occurred_at, a.last_seen AS last_seen, a.closed_at AS closed_at
               ORDER BY occurred_at, code""",
            {"rule_id": "string"}, ordered=True,
        ),
        NamedQuery(
            "alerts",
            "预警列表 Alerts filtered by state, severity, rule and subject ('' = any), newest first",
            """MATCH (a:Alert)
               WHERE ($state = '' OR a.alert_state = $state) AND ($severity = '' OR a.severity = $severity)
                     AND ($rule_id = '' OR a.rule_id = $rule_id) AND ($subject = '' OR $subject IN a.alert_subjects)
               RETURN a.key AS code, a.rule_id AS rule_id, a.rule_version AS rule_version, a.severity AS severity,
                      a.alert_state AS state, a.message AS message, a.message_en AS message_en,
                      a.alert_subjects AS subjects, a.occurred_at AS raised_at, a.event_at AS event_at,
                      a.last_seen AS last_seen, a.occurrences AS occurrences
               ORDER BY raised_at DESC, code LIMIT $limit""",
            {"state": "string", "severity": "string", "rule_id": "string", "subject": "string", "limit": "integer"},
            ordered=True,
        ),
        NamedQuery(
            "vaccinations_with_lots",
            "接种批号 Vaccinations with their lot's expiry and recall state",
            """MATCH (v:Vaccination)-[:with_lot]->(l:VaccineLot)
               OPTIONAL MATCH (v)-[:at_institution]->(i:Institution)
               RETURN v.key AS vaccination, v.occurred_at AS occurred_at, l.key AS lot, l.expires_on AS expires_on,
                      l.recalled AS recalled, l.manufacturer AS manufacturer, i.key AS institution""",
        ),
        # ---------------------------------------------------------- medical knowledge (triage, QA)
        NamedQuery(
            "knowledge_conditions",
            "导诊知识 Every condition with what triage ranks by (symptom frequencies, prior, age/sex fit, subject)",
            """MATCH (d:Disease)
               RETURN d.key AS key, d.name AS name, d.name_en AS name_en, d.synonyms AS synonyms,
                      d.subject_code AS subject_code, d.kb_departments AS departments, d.urgency AS urgency,
                      d.prevalence AS prevalence, d.affects_sex AS affects_sex, d.min_age AS min_age,
                      d.max_age AS max_age, d.symptom_weights AS symptom_weights, d.kb_source AS kb_source
               ORDER BY key""",
            ordered=True,
        ),
        NamedQuery(
            "knowledge_condition_symptoms",
            "疾病-症状 Every (condition, symptom) pair",
            """MATCH (d:Disease)-[:has_symptom]->(s:Symptom)
               RETURN d.key AS disease, s.name AS symptom
               ORDER BY disease, symptom""",
            ordered=True,
        ),
        NamedQuery(
            "knowledge_terms",
            "知识词表 Names and synonyms of symptoms, drugs, checks and foods (for the complaint parser)",
            """MATCH (n)
               WHERE n.class IN ['Symptom', 'Drug', 'LabTest', 'Food']
               RETURN n.class AS class, n.key AS key, n.name AS name
               ORDER BY class, key""",
            ordered=True,
        ),
        NamedQuery(
            "disease_facts",
            "疾病知识 What the graph knows about diseases: description, cause, prevention, treatment, course…",
            """MATCH (d:Disease)
               WHERE d.key IN $diseases
               RETURN d.key AS key, d.name AS name, d.name_en AS name_en, d.kb_departments AS departments,
                      d.subject_code AS subject_code, d.urgency AS urgency, d.description AS description,
                      d.cause AS cause, d.prevention AS prevention, d.treatment AS treatment, d.course AS course,
                      d.cure_rate AS cure_rate, d.susceptible AS susceptible, d.transmission AS transmission,
                      d.nursing AS nursing, d.diet_advice AS diet_advice, d.cost AS cost,
                      d.insurance_covered AS insurance_covered, d.kb_source AS kb_source
               ORDER BY key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "drug_facts",
            "药品知识 Drugs by key: class, maximum daily dose, pregnancy and age contraindications",
            """MATCH (x:Drug)
               WHERE x.key IN $drugs
               RETURN x.key AS key, x.name AS name, x.name_en AS name_en, x.drug_class AS drug_class, x.atc AS atc,
                      x.unit AS unit, x.max_daily_dose AS max_daily_dose,
                      x.pregnancy_contraindicated AS pregnancy_contraindicated, x.min_age AS min_age
               ORDER BY key""",
            {"drugs": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_symptoms",
            "症状 Symptoms of a disease",
            """MATCH (d:Disease)-[:has_symptom]->(x:Symptom)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_drugs",
            "常用药 Drugs a disease is commonly treated with",
            """MATCH (d:Disease)-[:treated_with]->(x:Drug)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_checks",
            "检查 Checks used to diagnose a disease",
            """MATCH (d:Disease)-[:checked_by]->(x:LabTest)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_good_foods",
            "宜吃 Foods good to eat with a disease",
            """MATCH (d:Disease)-[:good_food]->(x:Food)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_avoid_foods",
            "忌吃 Foods to avoid with a disease",
            """MATCH (d:Disease)-[:avoid_food]->(x:Food)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "disease_complications",
            "并发症 Complications of a disease",
            """MATCH (d:Disease)-[:complication]->(x:Disease)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, x.key AS key, x.name AS name
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "symptom_diseases",
            "哪些病有此症状 Diseases that show a symptom",
            """MATCH (d:Disease)-[:has_symptom]->(x:Symptom)
               WHERE x.key IN $terms
               RETURN x.key AS term, d.key AS key, d.name AS name, d.prevalence AS prevalence
               ORDER BY term, key""",
            {"terms": "strings"}, ordered=True,
        ),
        NamedQuery(
            "drug_diseases",
            "此药治什么病 Diseases a drug is commonly used for",
            """MATCH (d:Disease)-[:treated_with]->(x:Drug)
               WHERE x.key IN $terms
               RETURN x.key AS term, d.key AS key, d.name AS name, d.prevalence AS prevalence
               ORDER BY term, key""",
            {"terms": "strings"}, ordered=True,
        ),
        NamedQuery(
            "check_diseases",
            "此检查查什么病 Diseases a check is used to diagnose",
            """MATCH (d:Disease)-[:checked_by]->(x:LabTest)
               WHERE x.key IN $terms
               RETURN x.key AS term, d.key AS key, d.name AS name, d.prevalence AS prevalence
               ORDER BY term, key""",
            {"terms": "strings"}, ordered=True,
        ),
        NamedQuery(
            "food_good_for",
            "宜吃此食物的疾病 Diseases for which a food is good",
            """MATCH (d:Disease)-[:good_food]->(x:Food)
               WHERE x.key IN $terms
               RETURN x.key AS term, d.key AS key, d.name AS name, d.prevalence AS prevalence
               ORDER BY term, key""",
            {"terms": "strings"}, ordered=True,
        ),
        NamedQuery(
            "food_avoid_for",
            "忌吃此食物的疾病 Diseases for which a food should be avoided",
            """MATCH (d:Disease)-[:avoid_food]->(x:Food)
               WHERE x.key IN $terms
               RETURN x.key AS term, d.key AS key, d.name AS name, d.prevalence AS prevalence
               ORDER BY term, key""",
            {"terms": "strings"}, ordered=True,
        ),
        NamedQuery(
            "articles_about",
            "健康教育 Health-education articles about diseases",
            """MATCH (a:KnowledgeArticle)-[:about]->(d:Disease)
               WHERE d.key IN $diseases
               RETURN d.key AS disease, a.key AS key, a.name AS name, a.topic AS topic, a.body AS body
               ORDER BY disease, key""",
            {"diseases": "strings"}, ordered=True,
        ),
        NamedQuery(
            "practitioners_for_subjects",
            "推荐医生 Physicians in departments of the given 诊疗科目, with their institution and its place",
            """MATCH (p:Practitioner)-[:works_in]->(d:Department)-[:part_of]->(i:Institution)
               WHERE d.subject_code IN $subjects AND p.class = 'Physician'
               RETURN p.key AS key, p.name AS name, p.title AS title, p.rating AS rating, p.expertise AS expertise,
                      d.subject_code AS subject_code, d.name AS department, i.key AS institution,
                      i.name AS institution_name, i.class AS institution_class, i.grade AS grade,
                      i.latitude AS latitude, i.longitude AS longitude
               ORDER BY key""",
            {"subjects": "strings"}, ordered=True,
        ),
        NamedQuery(
            "practitioner_visits",
            "医生接诊量 Encounters attended per practitioner",
            """MATCH (e:Encounter)-[:attended_by]->(p:Practitioner)
               WHERE p.key IN $practitioners
               RETURN p.key AS key, count(e) AS visits
               ORDER BY key""",
            {"practitioners": "strings"}, ordered=True,
        ),
        NamedQuery(
            "division_institution_places",
            "区划内机构坐标 Coordinates of the institutions in a division (a resident's place, roughly)",
            """MATCH (i:Institution)-[:located_in]->(d:Division)
               WHERE d.code STARTS WITH $code_prefix AND i.latitude IS NOT NULL
               RETURN i.key AS key, i.latitude AS latitude, i.longitude AS longitude
               ORDER BY key""",
            {"code_prefix": "string"}, ordered=True,
        ),
    ]
}


def named_query(name: str) -> NamedQuery:
    try:
        return QUERIES[name]
    except KeyError:
        raise UnknownQuery(f"unknown named query '{name}' {did_you_mean(name, QUERIES)}", query=name) from None


_NODE = re.compile(r"\((\w+):(\w+)")
_PROPERTY = re.compile(r"(\w+)\.(\w+)")
_XSD_TYPES = {"string": "string", "integer": "integer", "double": "double", "decimal": "double", "float": "double",
              "boolean": "boolean", "date": "date", "dateTime": "dateTime"}


def result_columns(query: NamedQuery, onto: Ontology) -> dict[str, str]:
    """The columns a named query returns and their types, without running it.

    A column ``alias.property AS name`` takes the ontology's datatype of ``property`` (``strings``
    for a list-valued one; ``key`` and ``class`` are strings); other columns take their type from
    ``NamedQuery.columns``, else ``any``. Columns follow the last RETURN clause of the statement.
    """
    out = returned_columns(query.cypher, query, onto)
    for lookup in query.lookups:
        out |= {name: kind for name, kind in returned_columns(lookup.cypher, query, onto).items()
                if name != lookup.on}
    if query.counted:
        return query.counted.columns(out)
    return query.pairs.columns(out) if query.pairs else out


def returned_columns(cypher: str, query: NamedQuery, onto: Ontology) -> dict[str, str]:
    """The columns one statement of a named query (its own, or a lookup's) returns, in order, with types."""
    labels = dict(_NODE.findall(cypher))
    out: dict[str, str] = {}
    for name, expr in return_items(cypher).items():
        if name in query.columns:
            out[name] = query.columns[name]
            continue
        prop = _PROPERTY.fullmatch(expr)
        if prop and prop.group(1) in labels:
            pname = prop.group(2)
            if pname in ("key", "class"):
                out[name] = "string"
            elif pname in onto.properties:
                p = onto.properties[pname]
                base = _XSD_TYPES.get(p.datatype, "any")
                out[name] = "strings" if p.is_list and base == "string" else (base if p.functional else "any")
            else:
                out[name] = "any"
        else:
            out[name] = "any"
    return out

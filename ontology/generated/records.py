# GENERATED FROM THE ONTOLOGY — do not edit; run `healthgraph ontology generate`.
# ontology: https://healthgraph.example/ontology
# version: 0.1.0
# source sha256: b9c88d137bc68882906e4a917cb1bcfd639e7587523593cc66daf65c3a1d3873

"""Typed record classes generated from ontology/healthgraph.ttl."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """Base of every record: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    ontology_class: ClassVar[str] = "Entity"
    table: ClassVar[str] = ""
    key_properties: ClassVar[tuple[str, ...]] = ()

    def key(self) -> str:
        """The graph key: the owl:hasKey properties joined by ':'."""
        return ":".join(str(getattr(self, p)) for p in self.key_properties)


class AdverseEvent(Record):
    """疑似预防接种异常反应 Adverse event following immunisation."""

    ontology_class: ClassVar[str] = "AdverseEvent"
    table: ClassVar[str] = "AdverseEvent"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    category: Literal['common_reaction', 'adverse_reaction', 'quality_accident', 'programme_error', 'coincidental', 'psychogenic', 'undetermined'] | None = None
    occurred_at: dt.datetime | None = None
    reported_at: dt.datetime | None = None
    serious: bool | None = None
    source_id: str
    source_system: str

class Alert(Record):
    """监管预警 Supervision alert."""

    ontology_class: ClassVar[str] = "Alert"
    table: ClassVar[str] = "Alert"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    alert_evidence: str | None = None
    alert_history: str | None = None
    alert_state: Literal['new', 'acknowledged', 'resolved', 'false_positive']
    alert_subjects: list[str] | None = None
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    code: str
    dedup_key: str | None = None
    event_at: dt.datetime | None = None
    explanation: str | None = None
    last_seen: dt.datetime | None = None
    legal_basis: str | None = None
    message: str | None = None
    message_en: str | None = None
    occurred_at: dt.datetime | None = None
    occurrences: int | None = None
    pack_id: str | None = None
    reason: str | None = None
    rule_id: str
    rule_version: str | None = None
    severity: Literal['info', 'warning', 'critical'] | None = None
    signature: str | None = None
    signed_by: str | None = None
    status: str | None = None

class Appointment(Record):
    """预约挂号 Appointment."""

    ontology_class: ClassVar[str] = "Appointment"
    table: ClassVar[str] = "Appointment"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    attendance: Literal['booked', 'attended', 'no_show', 'cancelled'] | None = None
    occurred_at: dt.datetime | None = None
    slot_at: dt.datetime | None = None
    source_id: str
    source_system: str

class Institution(Record):
    """机构 Institution."""

    ontology_class: ClassVar[str] = "Institution"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    address: str | None = None
    division_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: str
    name_en: str | None = None
    uscc: str

class HealthcareInstitution(Institution):
    """医疗卫生机构 Healthcare institution."""

    ontology_class: ClassVar[str] = "HealthcareInstitution"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    beds: int | None = None
    name: str  # required on HealthcareInstitution
    uscc: str  # required on HealthcareInstitution

class BloodCenter(HealthcareInstitution):
    """血站 Blood centre."""

    ontology_class: ClassVar[str] = "BloodCenter"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on BloodCenter
    uscc: str  # required on BloodCenter

class BloodDonation(Record):
    """献血 Blood donation."""

    ontology_class: ClassVar[str] = "BloodDonation"
    table: ClassVar[str] = "BloodDonation"
    key_properties: ClassVar[tuple[str, ...]] = ('din',)
    din: str
    occurred_at: dt.datetime
    screening: Literal['negative', 'reactive', 'pending'] | None = None
    volume_ml: int | None = None

class BloodUnit(Record):
    """血液成分 Blood unit."""

    ontology_class: ClassVar[str] = "BloodUnit"
    table: ClassVar[str] = "BloodUnit"
    key_properties: ClassVar[tuple[str, ...]] = ('din', 'component')
    abo_rh: Literal['A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-'] | None = None
    component: str
    din: str
    expires_on: dt.date | None = None
    status: str | None = None

class CDC(HealthcareInstitution):
    """疾病预防控制中心 Centre for disease control."""

    ontology_class: ClassVar[str] = "CDC"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on CDC
    uscc: str  # required on CDC

class Clinic(HealthcareInstitution):
    """诊所 Clinic."""

    ontology_class: ClassVar[str] = "Clinic"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on Clinic
    uscc: str  # required on Clinic

class CodeSystem(Record):
    """代码系统 Code system."""

    ontology_class: ClassVar[str] = "CodeSystem"
    table: ClassVar[str] = "CodeSystem"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    current_version: str
    name: str
    name_en: str | None = None
    publisher: str | None = None
    versions: list[str] | None = None

class CommunityHealthCenter(HealthcareInstitution):
    """社区卫生服务中心 Community health centre."""

    ontology_class: ClassVar[str] = "CommunityHealthCenter"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on CommunityHealthCenter
    uscc: str  # required on CommunityHealthCenter

class Concept(Record):
    """术语概念 Concept."""

    ontology_class: ClassVar[str] = "Concept"
    table: ClassVar[str] = "Concept"
    key_properties: ClassVar[tuple[str, ...]] = ('code_system', 'version', 'code')
    code: str
    code_system: str
    concept_status: Literal['active', 'retired']
    introduced_in: str | None = None
    name: str
    name_en: str | None = None
    parent_code: str | None = None
    retired_in: str | None = None
    version: str

class ConceptMapping(Record):
    """术语映射 Concept mapping."""

    ontology_class: ClassVar[str] = "ConceptMapping"
    table: ClassVar[str] = "ConceptMapping"
    key_properties: ClassVar[tuple[str, ...]] = ('mapping_id',)
    equivalence: Literal['equivalent', 'wider', 'narrower', 'related']
    from_code: str
    from_system: str
    mapping_id: str
    to_code: str
    to_system: str

class Consent(Record):
    """知情同意 Consent."""

    ontology_class: ClassVar[str] = "Consent"
    table: ClassVar[str] = "Consent"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    data_category: str | None = None
    purpose: Literal['treatment', 'public_health', 'research', 'insurance'] | None = None
    source_id: str
    source_system: str
    status: str | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

class Delivery(Record):
    """配送 Delivery."""

    ontology_class: ClassVar[str] = "Delivery"
    table: ClassVar[str] = "Delivery"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    occurred_at: dt.datetime
    quantity: float | None = None
    unit: str | None = None

class Department(Record):
    """科室 Department."""

    ontology_class: ClassVar[str] = "Department"
    table: ClassVar[str] = "Department"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    name: str | None = None
    name_en: str | None = None
    subject_code: str

class Diagnosis(Record):
    """诊断 Diagnosis."""

    ontology_class: ClassVar[str] = "Diagnosis"
    table: ClassVar[str] = "Diagnosis"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    icd10_code: str
    is_primary: bool | None = None
    occurred_at: dt.datetime | None = None
    reported_at: dt.datetime | None = None
    source_id: str
    source_system: str

class Disease(Record):
    """疾病 Disease."""

    ontology_class: ClassVar[str] = "Disease"
    table: ClassVar[str] = "Disease"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    affects_sex: Literal['1', '2'] | None = None
    cause: str | None = None
    code: str
    cost: str | None = None
    course: str | None = None
    cure_rate: str | None = None
    description: str | None = None
    diet_advice: str | None = None
    insurance_covered: bool | None = None
    kb_departments: list[str] | None = None
    kb_source: str | None = None
    max_age: int | None = None
    min_age: int | None = None
    name: str | None = None
    name_en: str | None = None
    notifiable_class: Literal['A', 'B', 'C'] | None = None
    nursing: str | None = None
    prevalence: float | None = None
    prevention: str | None = None
    report_limit_hours: int | None = None
    subject_code: str | None = None
    susceptible: str | None = None
    symptom_weights: str | None = None
    synonyms: list[str] | None = None
    transmission: str | None = None
    treatment: str | None = None
    urgency: Literal['emergency', 'urgent', 'routine'] | None = None

class Division(Record):
    """行政区划 Administrative division."""

    ontology_class: ClassVar[str] = "Division"
    table: ClassVar[str] = "Division"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    level: Literal['province', 'prefecture', 'county'] | None = None
    name: str
    name_en: str | None = None

class Document(Record):
    """医疗文档 Clinical document."""

    ontology_class: ClassVar[str] = "Document"
    table: ClassVar[str] = "Document"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    doc_type: str
    occurred_at: dt.datetime | None = None
    source_id: str
    source_system: str
    title_text: str | None = None

class Drug(Record):
    """药品 Drug."""

    ontology_class: ClassVar[str] = "Drug"
    table: ClassVar[str] = "Drug"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    atc: str | None = None
    code: str
    drug_class: str | None = None
    manufacturer: str | None = None
    max_daily_dose: float | None = None
    min_age: int | None = None
    name: str
    name_en: str | None = None
    pregnancy_contraindicated: bool | None = None
    unit: str | None = None

class Encounter(Record):
    """就诊 Encounter."""

    ontology_class: ClassVar[str] = "Encounter"
    table: ClassVar[str] = "Encounter"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    ended_at: dt.datetime | None = None
    occurred_at: dt.datetime
    source_id: str
    source_system: str

class EmergencyEncounter(Encounter):
    """急诊 Emergency encounter."""

    ontology_class: ClassVar[str] = "EmergencyEncounter"
    table: ClassVar[str] = "Encounter"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime  # required on EmergencyEncounter
    source_id: str  # required on EmergencyEncounter
    source_system: str  # required on EmergencyEncounter

class Exposure(Record):
    """暴露(就餐) Exposure (meal)."""

    ontology_class: ClassVar[str] = "Exposure"
    table: ClassVar[str] = "Exposure"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime
    source_id: str
    source_system: str

class Food(Record):
    """食物 Food."""

    ontology_class: ClassVar[str] = "Food"
    table: ClassVar[str] = "Food"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    kb_source: str | None = None
    name: str
    name_en: str | None = None

class FoodBusiness(Institution):
    """食品经营主体 Food business."""

    ontology_class: ClassVar[str] = "FoodBusiness"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on FoodBusiness
    uscc: str  # required on FoodBusiness

class FoodDistributor(FoodBusiness):
    """食品批发配送企业 Food distributor."""

    ontology_class: ClassVar[str] = "FoodDistributor"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on FoodDistributor
    uscc: str  # required on FoodDistributor

class FoodLot(Record):
    """食品批次 Food lot."""

    ontology_class: ClassVar[str] = "FoodLot"
    table: ClassVar[str] = "FoodLot"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    expires_on: dt.date | None = None
    recalled: bool | None = None

class FoodProcessor(FoodBusiness):
    """食品加工企业 Food processor."""

    ontology_class: ClassVar[str] = "FoodProcessor"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on FoodProcessor
    uscc: str  # required on FoodProcessor

class FoodProducer(FoodBusiness):
    """食品生产企业 Food producer."""

    ontology_class: ClassVar[str] = "FoodProducer"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on FoodProducer
    uscc: str  # required on FoodProducer

class FoodProduct(Record):
    """食品 Food product."""

    ontology_class: ClassVar[str] = "FoodProduct"
    table: ClassVar[str] = "FoodProduct"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    name: str | None = None
    name_en: str | None = None
    pathogen: str | None = None

class FoodSample(Record):
    """食品抽检样品 Food sample."""

    ontology_class: ClassVar[str] = "FoodSample"
    table: ClassVar[str] = "FoodSample"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    occurred_at: dt.datetime | None = None
    pathogen: str | None = None
    positive: bool | None = None

class Hospital(HealthcareInstitution):
    """医院 Hospital."""

    ontology_class: ClassVar[str] = "Hospital"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    grade: Literal['3A', '3B', '3C', '2A', '2B', '2C', '1A', '1B', '1C', 'ungraded'] | None = None
    name: str  # required on Hospital
    uscc: str  # required on Hospital

class IdentityEvent(Record):
    """主索引变更事件 Identity event."""

    ontology_class: ClassVar[str] = "IdentityEvent"
    table: ClassVar[str] = "IdentityEvent"
    key_properties: ClassVar[tuple[str, ...]] = ('event_id',)
    action: Literal['build', 'register', 'update', 'link', 'unlink', 'merge', 'unmerge', 'accept', 'reject', 'register_practitioner', 'update_practitioner', 'set_licence_status', 'register_institution', 'update_institution', 'build_registries', 'seed_terminology', 'add_code_system_version']
    actor: str
    change: str | None = None
    event_id: str
    masters: list[str] | None = None
    occurred_at: dt.datetime | None = None
    reason: str | None = None
    records: list[str] | None = None

class IngestBatch(Record):
    """导入批次 Ingest batch."""

    ontology_class: ClassVar[str] = "IngestBatch"
    table: ClassVar[str] = "IngestBatch"
    key_properties: ClassVar[tuple[str, ...]] = ('batch_id',)
    accepted: int | None = None
    quarantined: int | None = None
    received: int | None = None
    batch_id: str  # required on IngestBatch

class InpatientEncounter(Encounter):
    """住院 Inpatient encounter."""

    ontology_class: ClassVar[str] = "InpatientEncounter"
    table: ClassVar[str] = "Encounter"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime  # required on InpatientEncounter
    source_id: str  # required on InpatientEncounter
    source_system: str  # required on InpatientEncounter

class License(Record):
    """执业许可 Licence."""

    ontology_class: ClassVar[str] = "License"
    table: ClassVar[str] = "License"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    registration_status: Literal['registered', 'suspended', 'revoked', 'expired'] | None = None
    status: str | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None

class InstitutionLicense(License):
    """医疗机构执业许可证 Institution licence."""

    ontology_class: ClassVar[str] = "InstitutionLicense"
    table: ClassVar[str] = "License"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    licensed_subjects: list[str] | None = None
    code: str  # required on InstitutionLicense
    valid_from: dt.date  # required on InstitutionLicense

class KnowledgeArticle(Record):
    """健康教育文章 Health-education article."""

    ontology_class: ClassVar[str] = "KnowledgeArticle"
    table: ClassVar[str] = "KnowledgeArticle"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    body: str | None = None
    code: str
    kb_source: str | None = None
    name: str
    name_en: str | None = None
    topic: Literal['膳食指南', '中医治未病', '用药服务', '计划生育', '预防接种', '分级诊疗', '健康教育'] | None = None

class LabResult(Record):
    """检验检查结果 Lab result."""

    ontology_class: ClassVar[str] = "LabResult"
    table: ClassVar[str] = "LabResult"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    abnormal: bool | None = None
    occurred_at: dt.datetime
    source_id: str
    source_system: str
    unit: str | None = None
    value: float | None = None

class LabTest(Record):
    """检验检查项目 Lab or imaging test."""

    ontology_class: ClassVar[str] = "LabTest"
    table: ClassVar[str] = "LabTest"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    name: str | None = None
    name_en: str | None = None
    recognition_days: int | None = None

class MasterPerson(Record):
    """主索引人员 Master person."""

    ontology_class: ClassVar[str] = "MasterPerson"
    table: ClassVar[str] = "MasterPerson"
    key_properties: ClassVar[tuple[str, ...]] = ('master_id',)
    address: str | None = None
    birth_date: dt.date | None = None
    division_code: str | None = None
    id_number: str | None = None
    master_id: str
    name: str | None = None
    phone: str | None = None
    sex: Literal['0', '1', '2', '9'] | None = None
    status: str
    survivorship: str | None = None

class Practitioner(Record):
    """医务人员 Practitioner."""

    ontology_class: ClassVar[str] = "Practitioner"
    table: ClassVar[str] = "Practitioner"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    birth_date: dt.date | None = None
    code: str
    expertise: str | None = None
    id_number: str | None = None
    name: str
    phone: str | None = None
    qualification_category: Literal['clinical', 'tcm', 'dental', 'public_health', 'nursing', 'pharmacy'] | None = None
    qualification_code: str | None = None
    rating: float | None = None
    sex: Literal['0', '1', '2', '9'] | None = None
    status: str | None = None
    title: Literal['resident', 'attending', 'associate_chief', 'chief'] | None = None

class Nurse(Practitioner):
    """护士 Nurse."""

    ontology_class: ClassVar[str] = "Nurse"
    table: ClassVar[str] = "Practitioner"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str  # required on Nurse
    name: str  # required on Nurse

class OutpatientEncounter(Encounter):
    """门诊 Outpatient encounter."""

    ontology_class: ClassVar[str] = "OutpatientEncounter"
    table: ClassVar[str] = "Encounter"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime  # required on OutpatientEncounter
    source_id: str  # required on OutpatientEncounter
    source_system: str  # required on OutpatientEncounter

class PersonLink(Record):
    """主索引关联 Person link."""

    ontology_class: ClassVar[str] = "PersonLink"
    table: ClassVar[str] = "PersonLink"
    key_properties: ClassVar[tuple[str, ...]] = ('link_id',)
    evidence: str | None = None
    link_id: str
    linked_at: dt.datetime | None = None
    match_weight: float | None = None
    origin: Literal['AUTO', 'MANUAL']
    probability: float | None = None
    state: Literal['MATCH', 'POSSIBLE_MATCH', 'NO_MATCH', 'REDIRECT']

class Pharmacist(Practitioner):
    """药师 Pharmacist."""

    ontology_class: ClassVar[str] = "Pharmacist"
    table: ClassVar[str] = "Practitioner"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str  # required on Pharmacist
    name: str  # required on Pharmacist

class Pharmacy(Institution):
    """药店 Pharmacy."""

    ontology_class: ClassVar[str] = "Pharmacy"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on Pharmacy
    uscc: str  # required on Pharmacy

class Physician(Practitioner):
    """医师 Physician."""

    ontology_class: ClassVar[str] = "Physician"
    table: ClassVar[str] = "Practitioner"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str  # required on Physician
    name: str  # required on Physician

class PlasmaStation(HealthcareInstitution):
    """单采血浆站 Plasma collection station."""

    ontology_class: ClassVar[str] = "PlasmaStation"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on PlasmaStation
    uscc: str  # required on PlasmaStation

class PracticeLicense(License):
    """医师执业证书 Practice licence."""

    ontology_class: ClassVar[str] = "PracticeLicense"
    table: ClassVar[str] = "License"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    licensed_subjects: list[str] | None = None
    practice_scope: list[str] | None = None
    code: str  # required on PracticeLicense
    valid_from: dt.date  # required on PracticeLicense

class Prescription(Record):
    """处方 Prescription."""

    ontology_class: ClassVar[str] = "Prescription"
    table: ClassVar[str] = "Prescription"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime
    source_id: str
    source_system: str

class PrescriptionItem(Record):
    """处方明细 Prescription item."""

    ontology_class: ClassVar[str] = "PrescriptionItem"
    table: ClassVar[str] = "PrescriptionItem"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    daily_dose: float | None = None
    days_supply: int | None = None
    exception_reason: Literal['chronic', 'elderly', 'remote'] | None = None
    source_id: str
    source_system: str
    trace_code: str | None = None
    unit: str | None = None

class RegistryEvent(Record):
    """注册变更事件 Registry event."""

    ontology_class: ClassVar[str] = "RegistryEvent"
    table: ClassVar[str] = "RegistryEvent"
    key_properties: ClassVar[tuple[str, ...]] = ('event_id',)
    action: Literal['build', 'register', 'update', 'link', 'unlink', 'merge', 'unmerge', 'accept', 'reject', 'register_practitioner', 'update_practitioner', 'set_licence_status', 'register_institution', 'update_institution', 'build_registries', 'seed_terminology', 'add_code_system_version']
    actor: str
    change: str | None = None
    event_id: str
    occurred_at: dt.datetime | None = None
    reason: str | None = None
    registry: Literal['practitioner', 'institution', 'terminology']
    subjects: list[str] | None = None

class Resident(Record):
    """居民 Resident."""

    ontology_class: ClassVar[str] = "Resident"
    table: ClassVar[str] = "Resident"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    address: str | None = None
    birth_date: dt.date
    division_code: str | None = None
    id_number: str | None = None
    name: str
    phone: str | None = None
    pregnant: bool | None = None
    sex: Literal['0', '1', '2', '9']
    source_id: str
    source_system: str

class SourceSystem(Record):
    """来源系统 Source system."""

    ontology_class: ClassVar[str] = "SourceSystem"
    table: ClassVar[str] = "SourceSystem"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    name: str | None = None
    trust: int

class Symptom(Record):
    """症状 Symptom."""

    ontology_class: ClassVar[str] = "Symptom"
    table: ClassVar[str] = "Symptom"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    body_part: str | None = None
    code: str
    kb_source: str | None = None
    name: str | None = None
    name_en: str | None = None
    synonyms: list[str] | None = None

class TownshipHealthCenter(HealthcareInstitution):
    """乡镇卫生院 Township health centre."""

    ontology_class: ClassVar[str] = "TownshipHealthCenter"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on TownshipHealthCenter
    uscc: str  # required on TownshipHealthCenter

class Transfusion(Record):
    """输血 Transfusion."""

    ontology_class: ClassVar[str] = "Transfusion"
    table: ClassVar[str] = "Transfusion"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime | None = None
    source_id: str
    source_system: str

class TransfusionReaction(Record):
    """输血不良反应 Transfusion reaction."""

    ontology_class: ClassVar[str] = "TransfusionReaction"
    table: ClassVar[str] = "TransfusionReaction"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    occurred_at: dt.datetime | None = None
    reaction_type: Literal['febrile', 'allergic', 'haemolytic', 'TRALI', 'TACO', 'infection', 'other'] | None = None
    reported_at: dt.datetime | None = None
    serious: bool | None = None
    source_id: str
    source_system: str

class Vaccination(Record):
    """预防接种 Vaccination."""

    ontology_class: ClassVar[str] = "Vaccination"
    table: ClassVar[str] = "Vaccination"
    key_properties: ClassVar[tuple[str, ...]] = ('source_system', 'source_id')
    dose_number: int | None = None
    occurred_at: dt.datetime
    source_id: str
    source_system: str

class Vaccine(Record):
    """疫苗 Vaccine."""

    ontology_class: ClassVar[str] = "Vaccine"
    table: ClassVar[str] = "Vaccine"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    name: str | None = None
    name_en: str | None = None

class VaccineLot(Record):
    """疫苗批号 Vaccine lot."""

    ontology_class: ClassVar[str] = "VaccineLot"
    table: ClassVar[str] = "VaccineLot"
    key_properties: ClassVar[tuple[str, ...]] = ('code',)
    code: str
    expires_on: dt.date | None = None
    manufacturer: str | None = None
    recalled: bool | None = None

class Venue(FoodBusiness):
    """餐饮服务场所 Food service venue."""

    ontology_class: ClassVar[str] = "Venue"
    table: ClassVar[str] = "Institution"
    key_properties: ClassVar[tuple[str, ...]] = ('uscc',)
    name: str  # required on Venue
    uscc: str  # required on Venue

RECORD_CLASSES: dict[str, type[Record]] = {
    "AdverseEvent": AdverseEvent,
    "Alert": Alert,
    "Appointment": Appointment,
    "BloodCenter": BloodCenter,
    "BloodDonation": BloodDonation,
    "BloodUnit": BloodUnit,
    "CDC": CDC,
    "Clinic": Clinic,
    "CodeSystem": CodeSystem,
    "CommunityHealthCenter": CommunityHealthCenter,
    "Concept": Concept,
    "ConceptMapping": ConceptMapping,
    "Consent": Consent,
    "Delivery": Delivery,
    "Department": Department,
    "Diagnosis": Diagnosis,
    "Disease": Disease,
    "Division": Division,
    "Document": Document,
    "Drug": Drug,
    "EmergencyEncounter": EmergencyEncounter,
    "Encounter": Encounter,
    "Exposure": Exposure,
    "Food": Food,
    "FoodBusiness": FoodBusiness,
    "FoodDistributor": FoodDistributor,
    "FoodLot": FoodLot,
    "FoodProcessor": FoodProcessor,
    "FoodProducer": FoodProducer,
    "FoodProduct": FoodProduct,
    "FoodSample": FoodSample,
    "HealthcareInstitution": HealthcareInstitution,
    "Hospital": Hospital,
    "IdentityEvent": IdentityEvent,
    "IngestBatch": IngestBatch,
    "InpatientEncounter": InpatientEncounter,
    "Institution": Institution,
    "InstitutionLicense": InstitutionLicense,
    "KnowledgeArticle": KnowledgeArticle,
    "LabResult": LabResult,
    "LabTest": LabTest,
    "License": License,
    "MasterPerson": MasterPerson,
    "Nurse": Nurse,
    "OutpatientEncounter": OutpatientEncounter,
    "PersonLink": PersonLink,
    "Pharmacist": Pharmacist,
    "Pharmacy": Pharmacy,
    "Physician": Physician,
    "PlasmaStation": PlasmaStation,
    "PracticeLicense": PracticeLicense,
    "Practitioner": Practitioner,
    "Prescription": Prescription,
    "PrescriptionItem": PrescriptionItem,
    "RegistryEvent": RegistryEvent,
    "Resident": Resident,
    "SourceSystem": SourceSystem,
    "Symptom": Symptom,
    "TownshipHealthCenter": TownshipHealthCenter,
    "Transfusion": Transfusion,
    "TransfusionReaction": TransfusionReaction,
    "Vaccination": Vaccination,
    "Vaccine": Vaccine,
    "VaccineLot": VaccineLot,
    "Venue": Venue,
}

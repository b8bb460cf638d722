"""The one exception tree of HealthGraph, with stable codes.

Every error carries a stable code (``HG-nnnn``) that clients, quarantine files and logs use;
the message says what went wrong, where, the valid options and a fix.

    HealthGraphError
    ├── OntologyError                      HG-00xx  the ontology itself
    │   ├── OntologyLoadError              HG-0001
    │   ├── OntologyInconsistent           HG-0002
    │   └── UnknownTerm                    HG-0003  a class/property name not in the ontology
    ├── ValidationError                    HG-01xx  a record breaks the ontology (quarantined)
    │   ├── UnknownClass                   HG-0101
    │   ├── UnknownProperty                HG-0102
    │   ├── WrongDatatype                  HG-0103
    │   ├── MissingKey                     HG-0104
    │   ├── ConflictingDuplicate           HG-0105
    │   ├── MissingRequired                HG-0106
    │   ├── ValueNotAllowed                HG-0107
    │   ├── PatternMismatch                HG-0108
    │   ├── UnknownEdgeType                HG-0109
    │   ├── DomainRangeViolation           HG-0110
    │   ├── DanglingEndpoint               HG-0111
    │   ├── CardinalityViolation           HG-0112
    │   └── SystemPropertyInInput          HG-0113
    ├── GraphError                         HG-02xx  the graph store
    │   ├── StoreLocked                    HG-0201  (retryable)
    │   ├── UnknownQuery                   HG-0202
    │   ├── QueryParameterError            HG-0203
    │   ├── TransactionFailed              HG-0204
    │   ├── NodeNotFound                   HG-0205
    │   ├── GraphUnavailable               HG-0206  (retryable) a graph server cannot be reached
    │   ├── SchemaMismatch                 HG-0207  a stored table holds a column the ontology no longer declares, or another type
    │   └── GraphCopyFailed                HG-0208  a graph could not be copied into another engine's bulk importer
    ├── IngestError                        HG-03xx  reading and loading inputs
    │   ├── InputFormatError               HG-0301
    │   └── ReconciliationError            HG-0302
    ├── SettingsError                      HG-0401
    ├── ServerUnavailable                  HG-0402  an engine server cannot be fetched or started
    ├── SearchError                        HG-05xx  the search indexes
    │   ├── SearchUnavailable              HG-0501  (retryable) a search server cannot be reached
    │   ├── IndexSpecError                 HG-0502  a bad or conflicting index spec, or a document that breaks it
    │   └── SearchQueryError               HG-0503  a bad filter, facet or page
    ├── TraceCodeError                     HG-06xx  traceability identifiers (details["field"] says which part)
    │   ├── InvalidDin                     HG-0601  an ISBT 128 donation identification number
    │   └── InvalidDrugTraceCode           HG-0602  a 药品追溯码 (NMPA 20-digit or GS1 element string)
    ├── IdentityError                      HG-07xx  the master person index
    │   ├── UnknownSource                  HG-0701  a source system that was never registered
    │   ├── InvalidResidentId              HG-0702  a resident id number failing GB 11643 (check digit, date, region)
    │   ├── MergeIntoSelf                  HG-0703  merging a master person into itself
    │   ├── NotMerged                      HG-0704  unmerging a master person that was never merged
    │   ├── StaleChange                    HG-0705  undoing a change that later changes built on
    │   └── InvalidLinkOperation           HG-0706  an operation the link's or master's state does not allow
    ├── RegistryError                      HG-08xx  the practitioner, institution and terminology registries
    │   ├── InvalidUscc                    HG-0801  a unified social credit code failing GB 32100-2015 (form, check character)
    │   ├── UnknownCodeSystem              HG-0802  a code system (or a version of one) that was never registered
    │   ├── InvalidLicence                 HG-0803  a licence breaking its rules (validity, scope, 诊疗科目, status value)
    │   ├── UnknownConcept                 HG-0804  a code not in the code system (version) asked for
    │   ├── StatusTransitionNotAllowed     HG-0805  a licence status change the rules forbid (e.g. reinstating a revoked one)
    │   ├── VersionExists                  HG-0806  adding a code-system version that already exists
    │   └── RegistrationConflict           HG-0807  an entry that clashes with another (a licence held by someone else)
    ├── RuleError                          HG-09xx  supervision rule packs and alerts
    │   ├── RulePackInvalid                HG-0901  a pack with problems; details["problems"] lists every one, each coded:
    │   │                                           HG-0902 unknown field, HG-0903 unknown column, HG-0904 condition
    │   │                                           type/syntax error, HG-0905 unknown query, HG-0906 bad value
    │   ├── RuleTestFailed                 HG-0907  a rule's shipped test case gave other alerts than expected
    │   ├── UnknownRule                    HG-0908  a rule id (or pack) that is not loaded
    │   ├── UnknownAlert                   HG-0909  an alert code not in the graph
    │   ├── AlertTransitionNotAllowed      HG-0910  a lifecycle change the alert's state forbids (e.g. acknowledging a resolved alert)
    │   └── DeliveryError                  HG-0911  a webhook subscription that is invalid or cannot be delivered to
    │       └── UnknownSubscription        HG-0911  a subscription or dead letter id not on file (404)
    └── KnowledgeError                     HG-10xx  the knowledge base, triage and question answering
        ├── KnowledgeBaseInvalid           HG-1001  a knowledge file with problems (all listed in details["problems"])
        ├── KnowledgeImportError           HG-1002  an external knowledge graph that cannot be read at all
        ├── EmptyQuestion                  HG-1003  an empty complaint, question or query (422)
        ├── QuestionTooLong                HG-1004  longer than the limit (422)
        ├── NotChinese                     HG-1005  no Chinese characters to understand (422)
        └── NothingUnderstood              HG-1006  no symptom, disease, drug or other known term recognised (422)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar


class HealthGraphError(Exception):
    """Base of every HealthGraph error: a stable ``code``, a message and structured details."""

    code: ClassVar[str] = "HG-0000"
    title: ClassVar[str] = "错误 error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    def is_retryable(self) -> bool:
        """True when the same call may succeed if tried again later."""
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "message": self.message, "details": self.details}


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """A ``(did you mean 'x'?)`` hint, or the list of valid options when nothing is close."""
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"(did you mean '{close[0]}'?)"
    shown = ", ".join(options[:12]) + (" …" if len(options) > 12 else "")
    return f"(valid: {shown})"


class OntologyError(HealthGraphError):
    code = "HG-0001"
    title = "本体错误 ontology error"


class OntologyLoadError(OntologyError):
    code = "HG-0001"
    title = "本体无法加载 ontology cannot be loaded"


class OntologyInconsistent(OntologyError):
    code = "HG-0002"
    title = "本体不一致 ontology inconsistent"


class UnknownTerm(OntologyError):
    code = "HG-0003"
    title = "未知本体术语 unknown ontology term"
    http_status = 404


class ValidationError(HealthGraphError):
    """A record that breaks the ontology. Bulk loads quarantine it with this code."""

    code = "HG-0100"
    title = "校验失败 validation failed"
    http_status = 422


class UnknownClass(ValidationError):
    code = "HG-0101"
    title = "未知类 unknown class"


class UnknownProperty(ValidationError):
    code = "HG-0102"
    title = "未知属性 unknown property"


class WrongDatatype(ValidationError):
    code = "HG-0103"
    title = "数据类型错误 wrong datatype"


class MissingKey(ValidationError):
    code = "HG-0104"
    title = "缺少主键 missing key"


class ConflictingDuplicate(ValidationError):
    code = "HG-0105"
    title = "同一主键内容冲突 conflicting duplicate key"


class MissingRequired(ValidationError):
    code = "HG-0106"
    title = "缺少必填属性 missing required property"


class ValueNotAllowed(ValidationError):
    code = "HG-0107"
    title = "取值不在允许范围 value not allowed"


class PatternMismatch(ValidationError):
    code = "HG-0108"
    title = "格式不符 pattern mismatch"


class UnknownEdgeType(ValidationError):
    code = "HG-0109"
    title = "未知关系类型 unknown edge type"


class DomainRangeViolation(ValidationError):
    code = "HG-0110"
    title = "关系端点类型错误 edge endpoint outside domain/range"


class DanglingEndpoint(ValidationError):
    code = "HG-0111"
    title = "关系端点不存在 edge endpoint not found"


class CardinalityViolation(ValidationError):
    code = "HG-0112"
    title = "基数冲突 cardinality violation"


class SystemPropertyInInput(ValidationError):
    code = "HG-0113"
    title = "输入含系统属性 input sets a system property"


class GraphError(HealthGraphError):
    code = "HG-0200"
    title = "图存储错误 graph store error"


class StoreLocked(GraphError):
    code = "HG-0201"
    title = "图存储被占用 graph store locked"
    http_status = 503

    def is_retryable(self) -> bool:
        return True


class UnknownQuery(GraphError):
    code = "HG-0202"
    title = "未知命名查询 unknown named query"
    http_status = 404


class QueryParameterError(GraphError):
    code = "HG-0203"
    title = "查询参数错误 query parameter error"
    http_status = 422


class TransactionFailed(GraphError):
    code = "HG-0204"
    title = "事务失败 transaction failed"


class NodeNotFound(GraphError):
    code = "HG-0205"
    title = "未找到节点 node not found"
    http_status = 404


class GraphUnavailable(GraphError):
    code = "HG-0206"
    title = "图数据库不可用 graph engine unavailable"
    http_status = 503

    def is_retryable(self) -> bool:
        return True


class SchemaMismatch(GraphError):
    code = "HG-0207"
    title = "图结构与本体不符 stored schema differs from the ontology"
    http_status = 500


class GraphCopyFailed(GraphError):
    code = "HG-0208"
    title = "图复制失败 graph copy failed"
    http_status = 500


class IngestError(HealthGraphError):
    code = "HG-0300"
    title = "导入错误 ingest error"


class InputFormatError(IngestError):
    code = "HG-0301"
    title = "输入格式错误 input format error"
    http_status = 422


class ReconciliationError(IngestError):
    code = "HG-0302"
    title = "对账不平 counts do not reconcile"


class SettingsError(HealthGraphError):
    code = "HG-0401"
    title = "配置错误 settings error"


class ServerUnavailable(HealthGraphError):
    code = "HG-0402"
    title = "引擎服务无法启动 engine server unavailable"
    http_status = 503


class SearchError(HealthGraphError):
    code = "HG-0500"
    title = "检索错误 search error"


class SearchUnavailable(SearchError):
    code = "HG-0501"
    title = "检索服务不可用 search engine unavailable"
    http_status = 503

    def is_retryable(self) -> bool:
        return True


class IndexSpecError(SearchError):
    code = "HG-0502"
    title = "索引定义错误 index spec error"
    http_status = 422


class SearchQueryError(SearchError):
    code = "HG-0503"
    title = "检索参数错误 search query error"
    http_status = 422


class TraceCodeError(HealthGraphError):
    code = "HG-0600"
    title = "追溯码错误 traceability code error"
    http_status = 422


class InvalidDin(TraceCodeError):
    code = "HG-0601"
    title = "献血码无效 invalid donation identification number"


class InvalidDrugTraceCode(TraceCodeError):
    code = "HG-0602"
    title = "药品追溯码无效 invalid drug traceability code"


class IdentityError(HealthGraphError):
    code = "HG-0700"
    title = "主索引错误 master index error"
    http_status = 409


class UnknownSource(IdentityError):
    code = "HG-0701"
    title = "未注册的来源系统 unknown source system"
    http_status = 422


class InvalidResidentId(IdentityError):
    code = "HG-0702"
    title = "身份证号无效 invalid resident id number"
    http_status = 422


class MergeIntoSelf(IdentityError):
    code = "HG-0703"
    title = "不能与自身合并 cannot merge a person into itself"
    http_status = 422


class NotMerged(IdentityError):
    code = "HG-0704"
    title = "未曾合并 never merged"


class StaleChange(IdentityError):
    code = "HG-0705"
    title = "已有后续变更 later changes depend on this one"


class InvalidLinkOperation(IdentityError):
    code = "HG-0706"
    title = "关联状态不允许此操作 not allowed in the link's state"



class RegistryError(HealthGraphError):
    code = "HG-0800"
    title = "注册服务错误 registry error"
    http_status = 409


class InvalidUscc(RegistryError):
    code = "HG-0801"
    title = "统一社会信用代码无效 invalid unified social credit code"
    http_status = 422


class UnknownCodeSystem(RegistryError):
    code = "HG-0802"
    title = "未注册的代码系统 unknown code system"
    http_status = 404


class InvalidLicence(RegistryError):
    code = "HG-0803"
    title = "执业许可无效 invalid licence"
    http_status = 422


class UnknownConcept(RegistryError):
    code = "HG-0804"
    title = "代码系统中无此编码 unknown concept"
    http_status = 404


class StatusTransitionNotAllowed(RegistryError):
    code = "HG-0805"
    title = "不允许的状态变更 status change not allowed"


class VersionExists(RegistryError):
    code = "HG-0806"
    title = "版本已存在 code system version exists"


class RegistrationConflict(RegistryError):
    code = "HG-0807"
    title = "注册冲突 registration conflict"


class RuleError(HealthGraphError):
    code = "HG-0900"
    title = "监管规则错误 supervision rule error"
    http_status = 422


class RulePackInvalid(RuleError):
    """A rule pack failed validation. ``details["problems"]`` holds every problem found, each a dict
    with its own ``code`` (HG-0902 … HG-0906), the rule id, the field and the message."""

    code = "HG-0901"
    title = "规则包无效 invalid rule pack"

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.details.get("problems", []))


RULE_PROBLEM_CODES: dict[str, str] = {
    "HG-0902": "未知字段 unknown field",
    "HG-0903": "未知列 unknown column (not returned by the rule's query)",
    "HG-0904": "条件语法或类型错误 condition syntax or type error",
    "HG-0905": "未知命名查询 unknown named query",
    "HG-0906": "取值无效 invalid value",
}
"""The codes a rule-pack problem can carry (inside RulePackInvalid)."""


class RuleTestFailed(RuleError):
    code = "HG-0907"
    title = "规则自带测试未通过 rule test case failed"


class UnknownRule(RuleError):
    code = "HG-0908"
    title = "未知规则 unknown rule"
    http_status = 404


class UnknownAlert(RuleError):
    code = "HG-0909"
    title = "未知预警 unknown alert"
    http_status = 404


class AlertTransitionNotAllowed(RuleError):
    code = "HG-0910"
    title = "预警状态不允许此操作 not allowed in the alert's state"
    http_status = 409


class DeliveryError(RuleError):
    code = "HG-0911"
    title = "预警推送错误 alert delivery error"


class UnknownSubscription(DeliveryError):
    title = "未知推送订阅 unknown webhook subscription or dead letter"
    http_status = 404



class KnowledgeError(HealthGraphError):
    code = "HG-1000"
    title = "知识服务错误 knowledge service error"
    http_status = 422


class KnowledgeBaseInvalid(KnowledgeError):
    code = "HG-1001"
    title = "知识库文件无效 invalid knowledge file"
    http_status = 500


class KnowledgeImportError(KnowledgeError):
    code = "HG-1002"
    title = "无法读取外部知识图谱 cannot read the external knowledge graph"


class EmptyQuestion(KnowledgeError):
    code = "HG-1003"
    title = "内容为空 empty input"


class QuestionTooLong(KnowledgeError):
    code = "HG-1004"
    title = "内容过长 input too long"


class NotChinese(KnowledgeError):
    code = "HG-1005"
    title = "请用中文描述 please describe it in Chinese"


class NothingUnderstood(KnowledgeError):
    code = "HG-1006"
    title = "未能识别 nothing recognised"


VALIDATION_ERRORS: tuple[type[ValidationError], ...] = (
    UnknownClass, UnknownProperty, WrongDatatype, MissingKey, ConflictingDuplicate, MissingRequired,
    ValueNotAllowed, PatternMismatch, UnknownEdgeType, DomainRangeViolation, DanglingEndpoint,
    CardinalityViolation, SystemPropertyInInput,
)
"""Every reason a record can be quarantined for, in code order."""

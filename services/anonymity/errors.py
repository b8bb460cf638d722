"""Errors of the anonymisation engine, codes HG-12xx (see ``ontology/errors.py`` for the tree).

    AnonymityError                 HG-1200
    ├── HierarchyInvalid           HG-1201  a malformed hierarchy table (ragged rows, conflicting duplicates, bad codes)
    ├── HierarchyMissingValue      HG-1202  a data value the hierarchy does not list
    ├── HierarchyNotMonotone       HG-1203  values equal at level j differ at level j+1
    ├── InvalidPrivacyModel        HG-1204  a bad parameter (k < 1, ℓ < 1, t outside [0, 1], unknown sensitive column)
    ├── InvalidConfiguration       HG-1205  a bad call (suppression limit, metric, columns)
    ├── NoSolution                 HG-1206  no transformation satisfies the models within the suppression limit
    ├── VerificationFailed         HG-1207  the independent check of an output found a violation (a bug; please report)
    ├── ExportTampered             HG-1208  a research export whose files, manifest or signature do not verify;
    │                                       details: ``kind`` (missing / modified / manifest / unsigned / signature),
    │                                       ``file``
    └── NothingToExport            HG-1209  no resident of the graph (or of the window) can be exported
"""

from __future__ import annotations

from ontology.errors import HealthGraphError


class AnonymityError(HealthGraphError):
    code = "HG-1200"
    title = "匿名化错误 anonymisation error"
    http_status = 422


class HierarchyInvalid(AnonymityError):
    code = "HG-1201"
    title = "泛化层级无效 invalid generalisation hierarchy"


class HierarchyMissingValue(AnonymityError):
    code = "HG-1202"
    title = "泛化层级缺少取值 hierarchy lacks a data value"


class HierarchyNotMonotone(AnonymityError):
    code = "HG-1203"
    title = "泛化层级不单调 hierarchy is not monotone"


class InvalidPrivacyModel(AnonymityError):
    code = "HG-1204"
    title = "隐私模型参数无效 invalid privacy model"


class InvalidConfiguration(AnonymityError):
    code = "HG-1205"
    title = "匿名化配置无效 invalid anonymisation settings"


class NoSolution(AnonymityError):
    """No node of the lattice satisfies the privacy models within the suppression limit.

    ``details["min_suppressed"]`` is the fewest records any node would have to suppress (so the limit that
    would make the problem solvable), ``details["node"]`` the node needing it."""

    code = "HG-1206"
    title = "无可行匿名方案 no transformation satisfies the privacy models"


class VerificationFailed(AnonymityError):
    code = "HG-1207"
    title = "匿名结果校验未通过 the anonymised output failed verification"
    http_status = 500


class ExportTampered(AnonymityError):
    """A research export (services/research_export.py) that does not verify: a file missing or changed since the
    manifest was written, a manifest that omits a table, or a signature that is absent or wrong."""

    code = "HG-1208"
    title = "科研导出校验未通过 the research export does not verify"


class NothingToExport(AnonymityError):
    code = "HG-1209"
    title = "无可导出的数据 nothing to export"

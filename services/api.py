"""The HTTP API (FastAPI). ``create_app()`` builds it; ``healthgraph serve`` runs it on 127.0.0.1.

Errors are JSON with a stable code: ``{"code": "HG-0205", "title": ..., "message": ..., "details": ...}``.

Access control: every route declares a permission (``**permit(...)``) and one application-wide dependency
(:meth:`services.access.web.Gate.enforce`) authenticates the bearer token, checks the purpose of use, calls
:func:`services.access.authorise` and audits the decision. See docs/privacy.md.
"""

from __future__ import annotations

import datetime as dt
import html
import threading
from contextlib import asynccontextmanager
from dataclasses import asdict
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from graph import QUERIES, GraphStore
from ontology.errors import HealthGraphError, QueryParameterError
from ontology.model import load_ontology
from services import blood_safety, case_clusters, drug_trace, food_trace, trace_export, vaccine_safety
from services.access import Forbidden, Permission
from services.access.facts import GraphFacts
from services.access.web import Gate, auth_router, declare, permit
from services.console_triage import console_triage_router
from services.directory import Directory
from services.knowledge import QuestionAnswering
from services.knowledge_api import knowledge_router
from services.mpi import MasterPersonIndex
from services.mpi_api import mpi_router
from services.registries_api import registries_router
from services.triage import Triage
from services.supervision import Supervision
from services.supervision_api import supervision_router
from services.privacy import Guard, Viewer
from services.records import Records
from services.settings import Settings

API_VERSION = "0.1.0"


class Health(BaseModel):
    status: str
    engine: str
    ontology_version: str


class CountRow(BaseModel):
    name: str
    zh: str
    en: str
    kind: str
    count: int


def create_app(settings: Settings | None = None, *, store: GraphStore | None = None,
               clock: Callable[[], float] | None = None) -> FastAPI:
    """The application; pass ``store`` to serve an already-open graph (tests do), ``clock`` to fake time."""
    settings = settings or Settings()
    onto = load_ontology()
    state: dict[str, Any] = {}
    guard = Guard(onto)
    access = settings.access(clock)
    gate = Gate(access, lambda: state["records"].audit, GraphFacts(lambda: state["store"], lambda: guard, access.store))

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        own = store is None
        state["store"] = store or settings.open_graph(onto)
        state["records"] = Records(state["store"], guard, settings.audit_log())
        state["directory"] = Directory.open(settings, state["store"])
        state["mpi_lock"] = threading.Lock()
        state["webhooks"] = settings.webhooks()
        yield
        state["webhooks"].stop()
        state["directory"].close()
        if own:
            state["store"].close()

    app = FastAPI(title="HealthGraph 区域人口健康知识图谱", version=API_VERSION, lifespan=lifespan,
                  description="Typed population-health knowledge graph governed by an OWL ontology.",
                  dependencies=[Depends(gate.enforce)])  # every route, whatever router it comes from
    app.state.access = access

    @app.exception_handler(HealthGraphError)
    async def on_error(_: Request, exc: HealthGraphError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = QueryParameterError("请求参数无效 invalid request parameters", errors=exc.errors())
        return JSONResponse(err.to_dict(), status_code=422)

    def viewer(request: Request) -> Viewer:
        """The caller as the gate established it (role, purpose and labels)."""
        return request.state.viewer

    def unrestricted(icd10: str | None, request: Request) -> None:
        # cases of a restricted diagnosis name the people who have it
        label = guard.restriction_of_prefix(icd10)
        if label and label not in viewer(request).labels:
            raise Forbidden(f"受限诊断需要 {label} 授权 a restricted diagnosis needs the {label} right", label=label)

    app.include_router(auth_router(gate, lambda: settings.audit_path))

    @app.get("/health", **permit(Permission.PUBLIC), response_model=Health, tags=["platform"])
    def health() -> Health:
        """Liveness and what is running."""
        return Health(status="ok", engine=settings.graph_engine, ontology_version=onto.version)

    @app.get("/stats", **permit(Permission.PUBLIC), response_model=list[CountRow], tags=["platform"])
    def stats() -> list[CountRow]:
        """Node count per class and edge count per edge type, with zh/en labels."""
        rows = []
        for name, n in state["store"].counts().items():
            kind = "edge" if name in onto.edges else "class"
            label = onto.label_of(name)
            rows.append(CountRow(name=name, zh=label.zh, en=label.en, kind=kind, count=n))
        return rows

    @app.get("/ontology/classes", **permit(Permission.PUBLIC), tags=["ontology"])
    def classes() -> list[dict[str, Any]]:
        """Classes with labels, parent, storage table, key and properties."""
        return [{"name": c.name, "zh": c.label.zh, "en": c.label.en, "parent": c.parent, "table": c.table,
                 "key": list(onto.key_of(c.name)), "required": sorted(onto.required_of(c.name)),
                 "subclasses": sorted(onto.descendants(c.name) - {c.name}),
                 "properties": sorted(p for p, prop in onto.properties_of(c.name).items() if not prop.system)}
                for c in onto.classes.values()]

    @app.get("/ontology/properties", **permit(Permission.PUBLIC), tags=["ontology"])
    def properties() -> list[dict[str, Any]]:
        """Data properties with datatype, domain, sensitivity, allowed values and the basis cited."""
        return [{"name": p.name, "zh": p.label.zh, "en": p.label.en, "datatype": p.datatype, "list": p.is_list,
                 "domain": sorted(p.domain), "sensitivity": p.sensitivity, "allowed_values": list(p.allowed_values),
                 "pattern": p.pattern, "system": p.system, "basis": p.basis} for p in onto.properties.values()]

    @app.get("/ontology/edges", **permit(Permission.PUBLIC), tags=["ontology"])
    def edges() -> list[dict[str, Any]]:
        """Edge types with domain and range."""
        return [{"name": e.name, "zh": e.label.zh, "en": e.label.en, "domain": sorted(e.domain),
                 "range": sorted(e.range), "functional": e.functional} for e in onto.edges.values()]

    @app.get("/nodes/{cls}/{key:path}/neighbours", **permit(Permission.READ_PERSONAL), tags=["graph"])
    def neighbours(cls: str, key: str, request: Request, edge: str | None = None,
                   limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Nodes one edge away (both directions)."""
        return state["records"].neighbours(cls, key, viewer(request), edge=edge, limit=limit)

    @app.get("/nodes/{cls}/{key:path}/paths", **permit(Permission.READ_PERSONAL), tags=["graph"])
    def paths(cls: str, key: str, request: Request, max_hops: int = Query(2, ge=1, le=4),
              limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Nodes reachable within ``max_hops`` edges (no edge repeated), nearest first."""
        return state["records"].paths(cls, key, viewer(request), max_hops=max_hops, limit=limit)

    @app.get("/nodes/{cls}/{key:path}", **permit(Permission.READ_PERSONAL), tags=["graph"])
    def node(cls: str, key: str, request: Request) -> dict[str, Any]:
        """One node by class and key (a class includes its subclasses); identifiers are masked."""
        return state["records"].get(cls, key, viewer(request))

    @app.get("/search", **permit(Permission.PUBLIC), tags=["search"])
    def search_all(q: str = Query(..., min_length=1, description="检索词 words, Chinese or English"),
                   size: int = Query(5, ge=1, le=50)) -> dict[str, Any]:
        """检索 Directory and knowledge search: best hits per class (institutions, practitioners,
        departments, diseases, symptoms, drugs, checks, vaccines, foods, divisions)."""
        return state["directory"].search(q, size=size)

    @app.get("/search/{table}", **permit(Permission.PUBLIC), tags=["search"])
    def search_table(table: str, q: str | None = None,
                     filter: Annotated[list[str] | None, Query(description="field:value, repeatable")] = None,
                     facet: Annotated[list[str] | None, Query(description="keyword fields to count")] = None,
                     page: int = Query(1, ge=1), size: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        """One class's index: BM25 ranking, keyword filters, facets, highlights, pages."""
        filters: dict[str, list[str]] = {}
        for f in filter or []:
            name, sep, value = f.partition(":")
            if not sep:
                raise QueryParameterError(f"筛选应为 field:value — filter must be field:value, got {f!r}")
            filters.setdefault(name, []).append(value)
        result = state["directory"].search_table(table, q, filters=filters, facets=facet or [], page=page, size=size)
        return asdict(result)

    @app.get("/trace/blood/lookback/{din}", **permit(Permission.TRACE), tags=["traceability"])
    def blood_lookback(din: str, request: Request, as_of: dt.date | None = None,
                       months: int = Query(blood_safety.LOOKBACK_MONTHS, ge=1, le=120)) -> dict[str, Any]:
        """献血者追溯 Lookback from a reactive donation: earlier donations in the window, each unit
        and what to do with it (quarantine first), recipients to notify, reactions."""
        found = state["records"].trace(viewer(request), "lookback", "BloodDonation", din,
                                       lambda: blood_safety.lookback(state["store"], din, as_of=as_of, months=months))
        return found.to_dict()

    @app.get("/trace/blood/lookback/{din}/graph", **permit(Permission.TRACE), tags=["traceability"])
    def blood_lookback_graph(din: str, request: Request, as_of: dt.date | None = None,
                             format: Literal["graphml", "json"] = "graphml") -> Response:
        """The lookback as a graph for other tools: GraphML or node-link JSON."""
        found = state["records"].trace(viewer(request), "lookback", "BloodDonation", din,
                                       lambda: blood_safety.lookback(state["store"], din, as_of=as_of))
        text, media = trace_export.serialise(trace_export.lookback_graph(found), format)
        return Response(text, media_type=media)

    @app.get("/trace/blood/inventory", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def blood_inventory(as_of: dt.date | None = None,
                        warn_days: int = Query(blood_safety.EXPIRY_WARNING_DAYS, ge=0, le=60)) -> dict[str, Any]:
        """血液库存与效期 Units in stock per store, component and ABO/Rh; expired units still in stock;
        units about to expire; labels beyond the component's storage limit (WS 399-2012)."""
        return blood_safety.inventory(state["store"], as_of=as_of, warn_days=warn_days)

    @app.get("/trace/blood/reaction-clusters", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def blood_reaction_clusters(min_reactions: int = Query(blood_safety.CLUSTER_MIN_REACTIONS, ge=2),
                                window_days: int = Query(blood_safety.CLUSTER_WINDOW_DAYS, ge=1)) -> dict[str, Any]:
        """输血反应聚集 Transfusion reactions sharing a unit, a donor, or a facility in a window."""
        return blood_safety.reaction_clusters(state["store"], min_reactions=min_reactions, window_days=window_days)

    @app.get("/trace/blood/traceback/{recipient:path}", **permit(Permission.TRACE), tags=["traceability"])
    def blood_traceback(recipient: str, request: Request, as_of: dt.date | None = None) -> dict[str, Any]:
        """受血者溯源 Traceback from a recipient: transfusions → units → donations → donors, with
        each donor's other recipients."""
        return state["records"].trace(viewer(request), "traceback", "Resident", recipient,
                                      lambda: blood_safety.traceback(state["store"], recipient, as_of=as_of))

    @app.get("/trace/food/back", **permit(Permission.TRACE), tags=["traceability"])
    def food_trace_back(request: Request, since: dt.datetime, until: dt.datetime, icd10: str | None = None,
                        case: Annotated[list[str] | None, Query(description="resident record keys")] = None,
                        shelf_days: int = Query(food_trace.SHELF_DAYS, ge=1, le=365),
                        top: int = Query(20, ge=1, le=200),
                        weight: Annotated[list[str] | None, Query(description="case weight, key:0.5")] = None,
                        control: Annotated[list[str] | None, Query(description="negative controls")] = None,
                        cross: Annotated[list[str] | None, Query(description="cross-contamination stations, * = all")
                                         ] = None,
                        kill: Annotated[list[str] | None, Query(description="kill-step stations")] = None
                        ) -> dict[str, Any]:
        """食源性疾病溯源 Trace-back from cases (a list, or an ICD-10 code in a period): stations,
        lots and deliveries ranked by the (weighted) share of cases whose backward trace reaches them,
        with negative controls, cross-contamination and kill steps as options."""
        unrestricted(icd10, request)
        weights = {}
        for w in weight or []:
            key, sep, value = w.rpartition(":")
            try:
                weights[key] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise QueryParameterError(f"权重应为 key:number — weight must be key:number, got {w!r}")
        return state["records"].trace(viewer(request), "food-back", "Disease", icd10 or f"{len(case or [])} cases",
                                      lambda: food_trace.trace_back(state["store"], cases=case, icd10=icd10,
                                                                    start=since, end=until, shelf_days=shelf_days,
                                                                    top=top, weights=weights, controls=control,
                                                                    cross_contamination=cross, kill=kill))

    @app.get("/trace/food/plausibility", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def food_plausibility(since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """追溯数据核查 Checks of the trace data: deliveries out of order, lots sent on in larger
        quantity than received, likely duplicate stations. Reported, never fixed silently."""
        return food_trace.plausibility(state["store"], start=since, end=until)

    @app.get("/trace/food/forward-graph/{lot:path}", **permit(Permission.TRACE), tags=["traceability"])
    def food_trace_forward_graph(lot: str, request: Request, since: dt.datetime, until: dt.datetime,
                                 format: Literal["graphml", "json"] = "graphml") -> Response:
        """The trace-forward as a graph for other tools: GraphML or node-link JSON."""
        found = state["records"].trace(viewer(request), "food-forward", "FoodLot", lot,
                                       lambda: food_trace.trace_forward(state["store"], lot, start=since, end=until))
        text, media = trace_export.serialise(trace_export.forward_graph(found), format)
        return Response(text, media_type=media)

    @app.get("/trace/food/forward/{lot:path}", **permit(Permission.TRACE), tags=["traceability"])
    def food_trace_forward(lot: str, request: Request, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """食品召回追踪 Trace-forward from a suspect lot: deliveries, stations reached, exposed residents."""
        return state["records"].trace(viewer(request), "food-forward", "FoodLot", lot,
                                      lambda: food_trace.trace_forward(state["store"], lot, start=since, end=until))

    @app.get("/trace/cases/clusters", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def case_space_time_clusters(request: Request, since: dt.datetime, until: dt.datetime,
                                 icd10: str = Query(..., min_length=1, description="ICD-10 code or prefix, e.g. A0"),
                                 max_days: int = Query(7, ge=1, le=60),
                                 replications: int = Query(999, ge=9, le=9999)) -> dict[str, Any]:
        """病例时空聚集 Prospective space-time permutation scan (Kulldorff 2005) of a diagnosis's cases
        by county and day: clusters still going on at the end of the period, with p-values."""
        unrestricted(icd10, request)
        return case_clusters.case_clusters(state["store"], icd10=icd10, since=since, until=until, max_days=max_days,
                                           replications=replications)

    @app.get("/trace/vaccine/lots", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def vaccine_lots(alpha: float = Query(vaccine_safety.ALPHA, gt=0, lt=1),
                     min_events: int = Query(vaccine_safety.MIN_EVENTS, ge=1)) -> dict[str, Any]:
        """疫苗批号安全 AEFI per vaccine lot with rates, and the lots whose rate departs from the
        vaccine's other lots (aggregate counts only: no personal data)."""
        return vaccine_safety.lot_signals(state["store"], alpha=alpha, min_events=min_events)

    @app.get("/trace/drug/repeats", **permit(Permission.TRACE_AGGREGATE), tags=["traceability"])
    def drug_repeats() -> dict[str, Any]:
        """药品追溯码重复 Trace codes dispensed more than once (resold, swapped or fake packs), with
        every dispensing: where and when (no personal data)."""
        return drug_trace.repeated_codes(state["store"])

    def mpi() -> MasterPersonIndex:
        # Built on first use: its matcher index holds every source record in memory.
        with state["mpi_lock"]:
            if "mpi" not in state:
                state["mpi"] = MasterPersonIndex(state["store"])
            return state["mpi"]

    app.include_router(mpi_router(mpi, lambda: state["records"], viewer))

    def supervision() -> Supervision:
        with state["mpi_lock"]:  # one instance: its subscribers feed the alert stream
            if "supervision" not in state:
                state["supervision"] = Supervision(state["store"], signer=settings.platform_key())
                state["supervision"].subscribe(state["webhooks"].publish)
            return state["supervision"]

    app.include_router(supervision_router(supervision, lambda: state["records"], viewer, lambda: state["webhooks"]))
    app.include_router(registries_router(lambda: state["store"], lambda: state["records"], viewer))

    def triage() -> Triage:
        # Built on first use: reads the graph's knowledge and loads (or trains) the learned models.
        with state["mpi_lock"]:
            if "triage" not in state:
                state["triage"] = Triage.open(state["store"], models_dir=settings.models_dir)
            return state["triage"]

    def qa() -> QuestionAnswering:
        t = triage()
        with state["mpi_lock"]:
            if "qa" not in state:
                state["qa"] = QuestionAnswering(state["store"], t.parser, t.models.intent)
            return state["qa"]

    app.include_router(knowledge_router(triage, qa))
    app.include_router(console_triage_router())
    declare(app.routes, "/console/", Permission.PUBLIC)  # the console page: static HTML calling /triage and /ask

    @app.get("/queries", **permit(Permission.PUBLIC), tags=["graph"])
    def queries() -> list[dict[str, Any]]:
        """The named-query catalog."""
        return [{"name": q.name, "description": q.description, "params": q.params} for q in QUERIES.values()]

    @app.post("/queries/{name}", **permit(Permission.QUERY), tags=["graph"])
    def run_query(name: str, request: Request, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a named query with JSON parameters."""
        return state["records"].query(name, params or {}, viewer(request))

    @app.get("/", **permit(Permission.PUBLIC), response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        counts = state["store"].counts()
        rows = "".join(
            f"<tr><td>{html.escape(onto.label_of(n).zh)}</td><td>{html.escape(onto.label_of(n).en)}</td>"
            f"<td><code>{html.escape(n)}</code></td><td style='text-align:right'>{c:,}</td></tr>"
            for n, c in counts.items())
        return (
            "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>HealthGraph</title>"
            "<style>body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;max-width:60rem}"
            "table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #ddd}</style></head>"
            "<body><h1>HealthGraph 区域人口健康知识图谱</h1>"
            f"<p>本体 ontology v{html.escape(onto.version)} · 引擎 engine {html.escape(settings.graph_engine)} · "
            "<a href='/docs'>API 文档 (OpenAPI)</a> · <a href='/stats'>统计 stats (JSON)</a> · "
            "<a href='/console/triage'>智能导诊 triage</a></p>"
            "<form action='/search'><input name='q' placeholder='检索 search: 医院, 儿科, 发热…' size='40'>"
            " <button>检索 Search</button></form>"
            "<h2>图谱内容 What the graph holds</h2><table><tr><th>中文</th><th>English</th><th>name</th><th>count</th></tr>"
            f"{rows}</table></body></html>")

    return app

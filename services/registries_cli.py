"""``healthgraph registry …``: the practitioner, institution and terminology registries (注册服务).

Changes are recorded with the operating-system user as actor; identifiers are masked on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli_support import Reason, actor, console, print_result, with_service
from services.privacy import mask

registry_app = typer.Typer(help="注册服务 Registries: practitioners, institutions, licences, terminology.",
                           no_args_is_help=True)


def _with_registries(fn: Callable[[Any], Any]) -> Any:
    from services.registries import Registries

    return with_service(Registries, fn)


@registry_app.command("seed-terminology")
def seed_terminology() -> None:
    """术语注册 Register the vocabularies of ontology/vocab as code systems (v1), with hierarchy and mappings."""
    found = _with_registries(lambda r: r.terminology.seed(actor=actor()))
    console.print(f"code systems added {found['systems']} · concepts {found['concepts']:,} · "
                  f"mappings {found['mappings']:,}")


@registry_app.command("build")
def build() -> None:
    """建立注册库 Seed the terminology, register loaded licences and institutions, report duplicates."""
    found = _with_registries(lambda r: r.build(actor=actor()))
    term = found["terminology"]
    console.print(f"terminology: {term['systems']} code systems (added now {term['systems_added']}, "
                  f"{term['concepts']:,} concepts, {term['mappings']:,} mappings)")
    console.print(f"practitioners {found['practitioners']:,} · institutions {found['institutions']:,} · "
                  f"licences updated now {found['licences_updated']:,}")
    for cls, counts in found["licences"].items():
        console.print(f"  {cls}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    console.print(f"invalid USCC (GB 32100-2015) {len(found['invalid_uscc'])} · licences with valid_to before "
                  f"valid_from {len(found['licences_with_invalid_validity'])}")
    console.print(f"likely duplicate practitioners {len(found['duplicate_practitioners'])} · likely duplicate "
                  f"institutions {len(found['duplicate_institutions'])}")
    for d in found["duplicate_institutions"][:10]:
        console.print(f"  {d['division_code']} {' ≈ '.join(d['names'])} ({d['rule']})")


@registry_app.command("practitioner")
def practitioner(code: str) -> None:
    """A practitioner (identifiers masked), licences with the status in force, employers."""
    def read(r: Any) -> dict[str, Any]:
        found = r.practitioners.get(code)
        for k in ("id_number", "phone"):
            if found["practitioner"].get(k):
                found["practitioner"][k] = mask(found["practitioner"][k])
        return found
    print_result(_with_registries(read))


@registry_app.command("institution")
def institution(uscc: str) -> None:
    """An institution, its licences and the number of practitioners registered there."""
    print_result(_with_registries(lambda r: r.institutions.get(uscc)))


@registry_app.command("licence-status")
def licence_status(licence: str, status: Annotated[str, typer.Argument(help="registered|suspended|revoked|expired")],
                   reason: Reason = None) -> None:
    """Suspend, revoke, expire or reinstate a licence."""
    print_result(_with_registries(lambda r: r.set_licence_status(licence, status, actor=actor(), reason=reason)))


@registry_app.command("duplicates")
def duplicates() -> None:
    """Likely duplicate practitioners and institutions, with the rule that found each pair."""
    found = _with_registries(lambda r: {"practitioners": r.practitioners.duplicates(),
                                        "institutions": r.institutions.duplicates()})
    table = Table(title="疑似重复 likely duplicates")
    for col in ("registry", "a", "b", "rule", "score"):
        table.add_column(col)
    for kind, rows in found.items():
        for d in rows:
            table.add_row(kind, str(d["a"]), str(d["b"]), d["rule"], f"{d['score']:.2f}")
    console.print(table)


@registry_app.command("history")
def history(subject: str) -> None:
    """Every registry change concerning an entry: who, when, why, which fields."""
    found = _with_registries(lambda r: r.history(subject))
    table = Table(title=f"变更历史 history of {subject}")
    for col in ("event", "when", "action", "actor", "reason", "changed"):
        table.add_column(col)
    for e in found:
        table.add_row(e["event"], str(e["occurred_at"]), e["action"], e["actor"], e["reason"] or "",
                      "; ".join(f"{k}: {' '.join(v)}" for k, v in e["changed"].items()))
    console.print(table)


@registry_app.command("systems")
def systems() -> None:
    """Registered code systems, their versions and concept counts."""
    found = _with_registries(lambda r: r.terminology.systems())
    table = Table(title="代码系统 code systems")
    for col in ("code", "name", "versions", "current", "active concepts"):
        table.add_column(col)
    for s in found:
        table.add_row(s["code"], f"{s['name']} {s['name_en']}", " ".join(s["versions"]), s["current_version"],
                      str(s["concepts"].get(s["current_version"], 0)))
    console.print(table)


@registry_app.command("lookup")
def lookup(system: str, code: str, version: Annotated[str | None, typer.Option()] = None) -> None:
    """A concept in one version (current by default)."""
    print_result(_with_registries(lambda r: r.terminology.lookup(system, code, version)))


@registry_app.command("search")
def search(text: str, system: Annotated[str | None, typer.Option()] = None,
           limit: Annotated[int, typer.Option()] = 20) -> None:
    """Concepts by code prefix, Chinese/English label or pinyin."""
    found = _with_registries(lambda r: r.terminology.search(text, system=system, limit=limit))
    table = Table(title=f"术语检索 {text}")
    for col in ("system", "version", "code", "name", "name_en", "status", "match"):
        table.add_column(col)
    for c in found:
        table.add_row(c["code_system"], c["version"], c["code"], c["name"] or "", c["name_en"] or "",
                      c["concept_status"], c["match"])
    console.print(table)


@registry_app.command("translate")
def translate(system: str, code: str, target: Annotated[str | None, typer.Option()] = None) -> None:
    """Translate a code to other code systems through the mappings."""
    print_result(_with_registries(lambda r: r.terminology.translate(system, code, target)))

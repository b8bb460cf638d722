"""``healthgraph mpi …``: the master person index (平台主索引) from the command line.

Changes are recorded with the operating-system user as actor; identifiers are masked on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli_support import Reason, actor, console, print_result, with_service
from services.privacy import mask

mpi_app = typer.Typer(help="主索引 Master person index: build, match, link, merge, review, cross-references.",
                      no_args_is_help=True)


def _with_index(fn: Callable[[Any], Any]) -> Any:
    from services.mpi import MasterPersonIndex

    return with_service(MasterPersonIndex, fn)


@mpi_app.command("build")
def build() -> None:
    """建立主索引 Link every source record not yet in the index (batch dedupe on an empty index)."""
    found = _with_index(lambda mpi: mpi.build(actor=actor()))
    console.print(f"records {found['records']:,} · linked now {found['linked']:,} · master persons "
                  f"{found['masters']:,} · awaiting review {found['possible']:,}")


Name = Annotated[str, typer.Option(help="姓名 name")]
BirthDate = Annotated[str, typer.Option(help="出生日期 birth date YYYY-MM-DD")]
Sex = Annotated[str | None, typer.Option(help="性别 1 男 male / 2 女 female (GB/T 2261.1)")]
IdNumber = Annotated[str | None, typer.Option(help="身份证号 resident id (GB 11643)")]
Text = Annotated[str | None, typer.Option()]


def _person(**fields: str | None) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v}


@mpi_app.command("register")
def register(source_system: str, source_id: str, name: Name, birth_date: BirthDate, sex: Sex = None,
             id_number: IdNumber = None, phone: Text = None, address: Text = None, division_code: Text = None,
             reason: Reason = None) -> None:
    """注册 Register or update a source record and link it to a master person."""
    record = _person(source_system=source_system, source_id=source_id, name=name, birth_date=birth_date, sex=sex,
                     id_number=id_number, phone=phone, address=address, division_code=division_code)
    found = _with_index(lambda mpi: mpi.register(record, actor=actor(), reason=reason))
    console.print(f"{found['record']} → [bold]{found['master_id']}[/] ({found['link']['state']}, "
                  f"{found['link']['origin']}); candidates considered: {len(found['candidates'])}")


@mpi_app.command("pdq")
def pdq(name: Name, birth_date: BirthDate, sex: Sex = None, id_number: IdNumber = None, phone: Text = None,
        address: Text = None, division_code: Text = None) -> None:
    """PDQ: master persons matching demographics (golden records, identifiers masked)."""
    query = _person(name=name, birth_date=birth_date, sex=sex, id_number=id_number, phone=phone, address=address,
                    division_code=division_code)
    found = _with_index(lambda mpi: mpi.demographic_query(query))
    table = Table(title="人员查询 demographic query")
    for col in ("master id", "probability", "name", "sex", "birth date", "id number", "address"):
        table.add_column(col)
    for row in found:
        g = row["golden"]
        table.add_row(row["master_id"], f"{row['probability']:.4f}", g.get("name") or "", g.get("sex") or "",
                      str(g.get("birth_date") or ""), mask(g["id_number"]) if g.get("id_number") else "",
                      g.get("address") or "")
    console.print(table)


@mpi_app.command("match")
def match(name: Name, birth_date: BirthDate, sex: Sex = None, id_number: IdNumber = None, phone: Text = None,
          address: Text = None, division_code: Text = None) -> None:
    """$match: candidate master persons with probability and per-field evidence (changes nothing)."""
    query = _person(name=name, birth_date=birth_date, sex=sex, id_number=id_number, phone=phone, address=address,
                    division_code=division_code)
    found = _with_index(lambda mpi: mpi.match(query))
    table = Table(title="候选主索引 candidates")
    for col in ("master id", "decision", "probability", "weight", "evidence 依据"):
        table.add_column(col)
    for c in found:
        evidence = " ".join(f"{f.field}:{f.level}({f.weight:+.1f})" for f in c.comparison.fields)
        table.add_row(c.master_id, c.decision, f"{c.comparison.probability:.4f}", f"{c.comparison.weight:.1f}",
                      ("id= " if c.comparison.deterministic else "") + evidence)
    console.print(table)


@mpi_app.command("xref")
def xref(source_system: str, source_id: str) -> None:
    """PIX: the master id of a source record and its ids in other source systems."""
    print_result(_with_index(lambda mpi: mpi.cross_references(source_system, source_id)))


@mpi_app.command("show")
def show(master_id: str) -> None:
    """A master person: golden record (identifiers masked), records, survivorship."""
    def read(mpi: Any) -> dict[str, Any]:
        golden = mpi.golden(master_id)
        for k in ("id_number", "phone"):
            if golden.get(k):
                golden[k] = mask(golden[k])
        return {"golden": golden, "records": mpi.records_of(mpi.resolve(master_id))}
    print_result(_with_index(read))


@mpi_app.command("link")
def link(record: str, master_id: str, reason: Reason = None) -> None:
    """Link a record to a master person by hand (MATCH, MANUAL)."""
    print_result(_with_index(lambda mpi: mpi.link(record, master_id, actor=actor(), reason=reason)))


@mpi_app.command("unlink")
def unlink(record: str, reason: Reason = None) -> None:
    """Detach a record from its master person (the old link becomes NO_MATCH)."""
    print_result(_with_index(lambda mpi: mpi.unlink(record, actor=actor(), reason=reason)))


@mpi_app.command("merge")
def merge(source: str, target: str, reason: Reason = None) -> None:
    """Merge master person SOURCE into TARGET."""
    print_result(_with_index(lambda mpi: mpi.merge(source, target, actor=actor(), reason=reason)))


@mpi_app.command("unmerge")
def unmerge(master_id: str, reason: Reason = None) -> None:
    """Undo the merge that took MASTER_ID away (exact prior state)."""
    print_result(_with_index(lambda mpi: mpi.unmerge(master_id, actor=actor(), reason=reason)))


@mpi_app.command("review")
def review(limit: Annotated[int, typer.Option()] = 20) -> None:
    """The review queue: POSSIBLE_MATCH links, most probable first."""
    found = _with_index(lambda mpi: mpi.review_queue(limit=limit))
    table = Table(title="待审核 review queue")
    for col in ("link", "probability", "evidence 依据"):
        table.add_column(col)
    for r in found:
        table.add_row(r["link"], f"{r['probability']:.4f}" if r["probability"] is not None else "",
                      " ".join(f"{e['field']}:{e['level']}" for e in r["evidence"]))
    console.print(table)


@mpi_app.command("accept")
def accept(link: str, reason: Reason = None) -> None:
    """Accept a POSSIBLE_MATCH: the record joins that master person."""
    print_result(_with_index(lambda mpi: mpi.accept(link, actor=actor(), reason=reason)))


@mpi_app.command("reject")
def reject(link: str, reason: Reason = None) -> None:
    """Reject a POSSIBLE_MATCH (it becomes NO_MATCH)."""
    print_result(_with_index(lambda mpi: mpi.reject(link, actor=actor(), reason=reason)))


@mpi_app.command("history")
def history(subject: str) -> None:
    """Every change concerning a master id or record key: who, when, why."""
    found = _with_index(lambda mpi: mpi.history(subject))
    table = Table(title=f"变更历史 history of {subject}")
    for col in ("event", "when", "action", "actor", "reason", "masters"):
        table.add_column(col)
    for e in found:
        table.add_row(e["event"], str(e["occurred_at"]), e["action"], e["actor"], e["reason"] or "",
                      " ".join(e["masters"] or []))
    console.print(table)

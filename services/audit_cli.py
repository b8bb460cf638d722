"""``healthgraph audit …``: verify, checkpoint and read the tamper-evident access audit.

The log defaults to ``Settings().audit_path``; checkpoints are signed with the SM2 key
``<data_dir>/keys/audit-sm2.pem``, created (mode 0600) on first use.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ontology.errors import HealthGraphError
from services.cli_support import console, print_result
from services.security.audit_chain import ChainedAuditLog, iter_events, verify_chain
from services.security.gm import SM2KeyPair

audit_app = typer.Typer(help="审计日志 Access audit: verify the SM3 chain and SM2 checkpoints, sign a checkpoint, "
                             "show recent entries.", no_args_is_help=True)

LogPath = Annotated[Path | None, typer.Argument(help="审计日志 audit log (default: the configured audit path)")]
KeyPath = Annotated[Path | None, typer.Option("--key", help="SM2 密钥 PEM key (default: <data_dir>/keys/audit-sm2.pem; "
                                                            "a public key is enough to verify)")]


def _path(path: Path | None) -> Path:
    from services.settings import Settings

    return path or Settings().audit_path


def _key(path: Path | None) -> SM2KeyPair:
    from services.settings import Settings

    if path is not None:
        return SM2KeyPair.load(path)
    return SM2KeyPair.load(Settings().audit_key_path, create=True)


def _fail(exc: HealthGraphError) -> typer.Exit:
    console.print(f"[bold red]{exc.code}[/] {exc.message}")  # the message opens with the title
    return typer.Exit(2)


@audit_app.command("verify")
def verify(path: LogPath = None, key: KeyPath = None) -> None:
    """校验 Check every hash link, checkpoint signature and the signed head; exit 2 on HG-1101."""
    try:
        report = verify_chain(_path(path), [_key(key)])
    except HealthGraphError as exc:
        raise _fail(exc) from None
    torn = " · incomplete last line (an interrupted write)" if report.torn_tail else ""
    console.print(f"entries {report.entries:,} · checkpoints {report.checkpoints:,} · signed through seq "
                  f"{report.signed_seq:,} · head {report.head_seq:,}{torn} · {report.seconds:.2f} s · [bold green]OK[/]")


@audit_app.command("checkpoint")
def checkpoint(path: LogPath = None, key: KeyPath = None) -> None:
    """签署检查点 Sign a checkpoint over the current head now."""
    try:
        with ChainedAuditLog(_path(path), _key(key)) as log:
            print_result(log.checkpoint())
    except HealthGraphError as exc:
        raise _fail(exc) from None


@audit_app.command("show")
def show(path: LogPath = None, last: Annotated[int, typer.Option("--last", "-n", min=1, help="条数 entries")] = 20,
         json_out: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False) -> None:
    """查看 The last N entries (not verified: run 'verify' for that)."""
    entries = deque(iter_events(_path(path)), maxlen=last)
    if json_out:
        for event in entries:
            print_result(event)
        return
    table = Table("seq", "recorded (UTC)", "who (role)", "purpose", "action", "entity", "outcome")
    for column in table.columns:
        column.overflow = "fold"
    for e in entries:
        agent = e.get("agent") or {}
        table.add_row(str(e.get("seq")), str(e.get("recorded", ""))[:19].replace("T", " "),
                      f"{agent.get('who')} ({agent.get('role')})", str(e.get("purposeOfUse")), str(e.get("action")),
                      str(e.get("entity")), str(e.get("outcome")))
    console.print(table)

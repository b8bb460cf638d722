"""What the command-line groups share: opening a service on the configured graph, the actor, output."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from ontology.errors import HealthGraphError

console = Console()
Reason = Annotated[str | None, typer.Option(help="原因 why (kept in the history)")]


def with_service(factory: Callable[[Any], Any], fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(factory(store))`` on the configured graph; a coded error exits with its code."""
    from services.settings import Settings

    store = Settings().open_graph()
    try:
        return fn(factory(store))
    except HealthGraphError as exc:
        console.print(f"[bold red]{exc.code}[/] {exc.title}: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        store.close()


def actor() -> str:
    """Changes from the command line are recorded with the operating-system user."""
    return f"cli:{getpass.getuser()}"


def print_result(result: Any) -> None:
    console.print_json(json.dumps(result, ensure_ascii=False, default=str))


def record_operation(as_role: str, action: str, entity: str, **detail: Any) -> None:
    """Record a key operation done from the command line (account, consent or key change) in the access audit.

    The entry carries its own SM2 signature and names the operating-system user (:func:`actor`) acting in an
    administrator role ``as_role``."""
    from services.privacy import Viewer
    from services.settings import Settings

    log = Settings().audit_log()
    try:
        log.record_operation(Viewer(user=actor(), role=as_role, purpose="operations"), action, entity,
                             "success", **detail)
    except HealthGraphError as exc:
        console.print(f"[bold red]{exc.code}[/] {exc.title}: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        log.close()

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

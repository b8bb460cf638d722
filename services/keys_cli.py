"""``healthgraph keys …``: the field-encryption keys (SM4-GCM keyring, HMAC-SM3 digest key).

Keys live under ``<data_dir>/keys`` (mode 0600) and are created on first use. ``rotate`` adds a new active SM4 key,
re-seals every encrypted value of the graph under it (the old keys stay on the ring, so nothing becomes unreadable
half-way); the rotation and the re-sealing are each recorded in the access audit as a signed key operation.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from services.cli_support import console, record_operation

keys_app = typer.Typer(help="密钥 Field-encryption keys: status and rotation.", no_args_is_help=True)


def _settings() -> Any:
    """The settings, when field encryption is on (otherwise there are no keys to show or rotate)."""
    from services.settings import Settings

    settings = Settings()
    if not settings.encrypt_fields:
        console.print("字段加密已关闭 field encryption is off (HEALTHGRAPH_ENCRYPT_FIELDS=false)")
        raise typer.Exit(1)
    return settings


def _status_table(status: dict[str, dict[str, int]]) -> Table:
    table = Table("字段 field", "值 values", "旧密钥或明文 not under the active key")
    for name, row in status.items():
        table.add_row(name, f"{row['values']:,}", f"{row['stale']:,}")
    return table


@keys_app.command("status")
def status() -> None:
    """The keyring (key ids, which is active) and, per encrypted field of the graph, how many values are stale."""
    settings = _settings()
    protection = settings.field_protection()
    console.print(f"SM4 密钥环 keyring {settings.field_keyring_path}: {', '.join(protection.keyring.ids)} "
                  f"(active {protection.keyring.active_id})")
    store = settings.open_graph()
    try:
        console.print(_status_table(store.seal_status()))
    finally:
        store.close()


@keys_app.command("rotate")
def rotate() -> None:
    """Make a new SM4 key active and re-seal every encrypted value under it."""
    settings = _settings()
    store = settings.open_graph()
    try:
        keyring = store.protector.keyring
        old, new = keyring.active_id, keyring.rotate()
        record_operation("security_admin", "keys:rotate", "Keyring/fields", previous=old, active=new)
        resealed = {}
        with console.status("重新加密 re-sealing…"):
            for table in store.onto.tables:
                if any(p.encrypted for p in store.onto.table_properties(table).values()):
                    resealed[table] = store.reseal(table)
        left = store.seal_status()
    finally:
        store.close()
    record_operation("security_admin", "keys:reseal", "Keyring/fields", active=new, resealed=resealed)
    console.print(f"新密钥 new active key {new} (previous {old}); re-sealed "
                  + ", ".join(f"{t} {n:,}" for t, n in resealed.items()))
    console.print(_status_table(left))

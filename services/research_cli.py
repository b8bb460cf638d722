"""``healthgraph export research``: the anonymised research graph; ``healthgraph export verify``: check one.

Registered in services/cli.py as ``app.add_typer(research_app, name="export")``. Pseudonyms are keyed with
``<data_dir>/keys/research-pseudonym.key`` (32 random bytes, mode 0600, created on first use) unless
``--key-file`` names another; keep that key to get the same pseudonyms in every export. The manifest is signed
with the audit SM2 key ``<data_dir>/keys/audit-sm2.pem``.
"""

from __future__ import annotations

import secrets
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ontology.errors import HealthGraphError
from services.cli_support import console
from services.security.errors import KeyInvalid, KeyNotFound
from services.security.gm import SM2KeyPair, check_secret_file, write_secret

research_app = typer.Typer(help="导出 Exports: the anonymised research graph for researchers, and its check.",
                           no_args_is_help=True)

KEY_BYTES = 32


@research_app.callback()
def _group() -> None:
    """导出 Exports for use outside the platform."""


def open_store() -> Any:
    """The configured graph, closed when the command ends."""
    from services.settings import Settings

    return closing(Settings().open_graph())


def pseudonym_key(path: Path | None = None) -> bytes:
    """The pseudonym key: ``path``, or the default key file (created on first use: 32 random bytes, mode 0600)."""
    from services.settings import Settings

    if path is None:
        path = Settings().data_dir / "keys" / "research-pseudonym.key"
        if not path.exists():
            write_secret(path, secrets.token_bytes(KEY_BYTES))
            console.print(f"新建假名密钥 created the pseudonym key {path} (mode 0600): keep it to get the same "
                          f"pseudonyms next time; it never leaves this machine")
    elif not path.is_file():
        raise KeyNotFound(f"密钥文件不存在 no key file at {path}", path=str(path))
    check_secret_file(path)
    key = path.read_bytes()
    if len(key) < 16:
        raise KeyInvalid(f"假名密钥过短 the pseudonym key in {path} has {len(key)} bytes; it needs at least 16",
                         path=str(path))
    return key


def _signer(path: Path | None) -> SM2KeyPair:
    from services.settings import Settings

    return SM2KeyPair.load(path) if path is not None else SM2KeyPair.load(Settings().audit_key_path, create=True)


def _fail(exc: HealthGraphError) -> typer.Exit:
    console.print(f"[bold red]{exc.code}[/] {exc.message}")  # the message opens with the title
    return typer.Exit(2)


@research_app.command("research")
def research(
    out: Annotated[Path, typer.Option("--out", help="输出目录 output folder")],
    k: Annotated[int, typer.Option("--k", min=2, help="k-匿名 k-anonymity of the resident table")] = 5,
    l: Annotated[float, typer.Option("--l", min=1, help="熵ℓ-多样性 entropy ℓ-diversity of the primary "  # noqa: E741
                                                         "diagnosis chapter")] = 2.0,
    epsilon: Annotated[float, typer.Option("--epsilon", help="差分隐私 ε per published count")] = 1.0,
    suppression: Annotated[float, typer.Option("--suppression", min=0, max=1,
                                               help="抑制上限 largest fraction of residents withheld")] = 0.02,
    small_cell: Annotated[int, typer.Option("--small-cell", min=1, help="小单元阈值 smallest exact count "
                                                                        "published")] = 10,
    since: Annotated[str | None, typer.Option("--since", help="起 encounters from (YYYY-MM-DD)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="止 encounters before (YYYY-MM-DD)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="年龄基准日 ages at (default: the latest "
                                                              "encounter's day)")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="假名密钥 pseudonym key file (default: "
                                                                     "<data_dir>/keys/research-pseudonym.key)")] = None,
    sign_key: Annotated[Path | None, typer.Option("--sign-key", help="SM2 签名密钥 PEM (default: the audit key "
                                                                     "<data_dir>/keys/audit-sm2.pem)")] = None,
) -> None:
    """科研导出 Write the anonymised research graph (Parquet, GraphML, report, signed manifest) to --out."""
    from services.research_export import export_research

    try:
        key, signer = pseudonym_key(key_file), _signer(sign_key)
        with open_store() as store:
            report = export_research(store, out, key=key, k=k, l=l, suppression=suppression, epsilon=epsilon,
                                     small_cell=small_cell, signer=signer, since=since, until=until, as_of=as_of)
    except HealthGraphError as exc:
        raise _fail(exc) from None
    doc = report.document
    table = Table("项 item", "值 value", title=f"科研导出 research export → {out}")
    table.add_row("rows", ", ".join(f"{name} {n:,}" for name, n in report.rows.items()))
    table.add_row("generalisation", ", ".join(f"{c} → {name}" for c, name in
                                              doc["generalisation"]["level_names"].items()))
    table.add_row("information loss", f"{report.loss:.2f} ({report.relative_loss:.1%} relative)")
    table.add_row("suppressed", f"{report.suppressed} residents (limit {report.max_suppressed})")
    table.add_row("achieved", f"k = {report.achieved_k}, entropy ℓ = {report.achieved_l:.2f}")
    table.add_row("restricted removed", f"{report.restricted_removed} diagnoses")
    table.add_row("small cells", f"{report.small_cells:,} withheld (< {small_cell})")
    table.add_row("ε per cell", f"{report.epsilon:g} (discrete Laplace, OpenDP)")
    table.add_row("as of", report.as_of.isoformat())
    table.add_row("signed by", report.signed_by or "-")
    table.add_row("time", f"{report.seconds:.1f} s")
    console.print(table)
    console.print(f"报告 report: {out / 'report.md'} · 校验 check: healthgraph export verify {out}")


@research_app.command("verify")
def verify(
    folder: Annotated[Path, typer.Argument(help="导出目录 export folder")],
    key: Annotated[Path | None, typer.Option("--key", help="SM2 公钥 PEM (default: the audit key "
                                                           "<data_dir>/keys/audit-sm2.pem)")] = None,
) -> None:
    """校验 Check the manifest's SM2 signature and every file's SHA-256; exit 2 on HG-1208."""
    from services.research_export import verify_export
    from services.settings import Settings

    try:
        checked = verify_export(folder, SM2KeyPair.load(key or Settings().audit_key_path))
    except HealthGraphError as exc:
        raise _fail(exc) from None
    extra = f" · not covered: {', '.join(checked.unlisted)}" if checked.unlisted else ""
    console.print(f"files {checked.files} · signed by {checked.signed_by}{extra} · [bold green]OK[/]")

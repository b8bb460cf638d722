"""``healthgraph access …``: users, locks, consent and institution clients in ``<data_dir>/access``.

Passwords and client secrets are read from a prompt (in scripts: ``HEALTHGRAPH_NEW_PASSWORD`` and
``HEALTHGRAPH_NEW_SECRET``) and stored as argon2id hashes. Privileged roles get a TOTP secret; its provisioning URI is printed once.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ontology.errors import HealthGraphError
from services.access import PRIVILEGED_ROLES, AccessStore, Purpose, Role, new_totp_secret, provisioning_uri
from services.access.model import CATEGORIES
from services.cli_support import console, record_operation

access_app = typer.Typer(help="访问控制 Access control: users and roles, locks, consent, institution clients.",
                         no_args_is_help=True)
user_app = typer.Typer(help="用户 Users: add, lock, unlock.", no_args_is_help=True)
consent_app = typer.Typer(help="知情同意 Consent: a resident grants or withdraws access.", no_args_is_help=True)
client_app = typer.Typer(help="机构客户端 Institution and node systems (client credentials).", no_args_is_help=True)
access_app.add_typer(user_app, name="user")
access_app.add_typer(consent_app, name="consent")
access_app.add_typer(client_app, name="client")

ROLES = ", ".join(r.value for r in Role)
PURPOSES = ", ".join(p.value for p in Purpose)


def _store() -> AccessStore:
    import time

    from services.settings import Settings

    return AccessStore(Settings().access_dir, time.time)


def _fail(exc: HealthGraphError) -> typer.Exit:
    console.print(f"[bold red]{exc.code}[/] {exc.message}")
    return typer.Exit(2)


def _secret(env: str, prompt: str) -> str:
    return os.environ.get(env) or typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


@user_app.command("add")
def user_add(name: str,
             role: Annotated[list[str], typer.Option("--role", help=f"角色 one of: {ROLES} (one per user)")],
             institution: Annotated[str | None, typer.Option(help="所属机构 USCC (clinicians)")] = None,
             label: Annotated[list[str] | None, typer.Option("--label", help="敏感标签 e.g. HIV, Psychiatric")] = None,
             resident: Annotated[list[str] | None, typer.Option(
                 "--resident", help="本人记录 a resident's own Resident/MasterPerson key (repeatable)")] = None) -> None:
    """Add a user. The password comes from HEALTHGRAPH_NEW_PASSWORD or a prompt. Asking for two administrator
    roles is refused (三权分立, HG-1309)."""
    from ontology.model import load_ontology

    try:
        roles = [Role(r) for r in role]
    except ValueError:
        raise _fail(HealthGraphError(f"未知角色 unknown role: {role} (valid: {ROLES})")) from None
    totp = new_totp_secret() if any(r in PRIVILEGED_ROLES for r in roles) else None
    try:
        _store().add_user(name, _secret("HEALTHGRAPH_NEW_PASSWORD", "口令 password"), [r.value for r in roles],
                          institution=institution, labels=label or [], subjects=resident or [], totp_secret=totp,
                          known_labels=frozenset(load_ontology().sensitivity_labels))
    except HealthGraphError as exc:
        raise _fail(exc) from None
    record_operation("security_admin", "access:user:add", f"User/{name}", roles=[r.value for r in roles],
                     institution=institution, labels=label or [], residents=resident or [])
    console.print(f"用户已添加 user added: {name} ({', '.join(role)})")
    if totp:
        console.print("动态口令 TOTP (scan once, then keep it secret):")
        console.print(provisioning_uri(totp, name), soft_wrap=True, markup=False)


def _set_lock(name: str, locked: bool) -> None:
    try:
        _store().update_user(name, locked=locked, failures=0, locked_until=None)
    except HealthGraphError as exc:
        raise _fail(exc) from None
    record_operation("security_admin", "access:user:lock" if locked else "access:user:unlock", f"User/{name}")
    console.print(f"{'已锁定 locked' if locked else '已解锁 unlocked'}: {name}")


@user_app.command("lock")
def user_lock(name: str) -> None:
    """Lock a user until unlocked (their current tokens stop working at once)."""
    _set_lock(name, True)


@user_app.command("unlock")
def user_unlock(name: str) -> None:
    """Unlock a user (also clears a lockout after failed logins)."""
    _set_lock(name, False)


Category = Annotated[str, typer.Option(help=f"数据类别 one of: {', '.join(CATEGORIES)}")]


@consent_app.command("grant")
def consent_grant(resident: Annotated[str, typer.Argument(help="居民记录 Resident key")],
                  institution: Annotated[str, typer.Option(help="授权机构 USCC")],
                  purpose: Annotated[str, typer.Option(help=f"使用目的 one of: {PURPOSES}")] = "treatment",
                  category: Category = "all") -> None:
    """A resident allows an institution to read a category of their record for a purpose."""
    try:
        _store().grant(resident, institution, purpose, category)
    except HealthGraphError as exc:
        raise _fail(exc) from None
    record_operation("security_admin", "consent:grant", f"Resident/{resident}", institution=institution,
                     consentPurpose=purpose, category=category)
    console.print(f"已授权 granted: {resident} → {institution} · {purpose} · {category}")


@consent_app.command("withdraw")
def consent_withdraw(resident: Annotated[str, typer.Argument(help="居民记录 Resident key")],
                     institution: Annotated[str, typer.Option(help="授权机构 USCC")],
                     purpose: Annotated[str, typer.Option(help=f"使用目的 one of: {PURPOSES}")] = "treatment",
                     category: Category = "all") -> None:
    """Withdraw a grant; reads by that institution are refused from the next request on."""
    try:
        n = _store().withdraw(resident, institution, purpose, category)
    except HealthGraphError as exc:
        raise _fail(exc) from None
    record_operation("security_admin", "consent:withdraw", f"Resident/{resident}", institution=institution,
                     consentPurpose=purpose, category=category, withdrawn=n)
    console.print(f"已撤回 withdrawn: {n}")


@client_app.command("add")
def client_add(client_id: str, institution: Annotated[str | None, typer.Option(help="机构 USCC")] = None,
               role: Annotated[str, typer.Option(help="角色 role (default node)")] = Role.NODE.value) -> None:
    """Add an institution or node system; the secret comes from HEALTHGRAPH_NEW_SECRET or a prompt."""
    try:
        _store().add_client(client_id, _secret("HEALTHGRAPH_NEW_SECRET", "客户端密钥 client secret"), role=role,
                            institution=institution)
    except (HealthGraphError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, HealthGraphError) else HealthGraphError(str(exc))) from None
    record_operation("security_admin", "access:client:add", f"Client/{client_id}", clientRole=role, institution=institution)
    console.print(f"客户端已添加 client added: {client_id}")

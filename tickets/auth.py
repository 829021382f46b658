"""Agents' credentials: argon2 password hashes and hashed bearer tokens."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from tickets.exceptions import InvalidInput, NotFound
from tickets.models import Agent, ApiToken, AuditEntry, Role

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD = 10
# argon2 is made to be costly (64 MiB and a few hundred ms of every core it is given): a flood
# of log-ins, each checked against a real or a dummy hash, would take every core from the rest
# of the desk. At most this many checks run at once; the others queue (in their worker
# threads, never on the event loop) behind them.
_ARGON2_SLOTS = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))

# What an API token may do. "cases": work cases (open, act, reply), read orders and quotes,
# scripts and SLA figures: every agent's token. "orders": push orders (POST /api/v1/orders),
# for the shop's integration. Orders decide what a refund may pay, so pushing them is a right of
# its own, given per token; whoever pushed an order may not be the second approver of its
# refunds (tickets/cases/ _check_second_approver). "webhooks": manage the shop's webhook
# subscriptions (/api/v1/webhooks; admins may with any token).
SCOPES = ("cases", "orders", "webhooks")
DEFAULT_SCOPES = ("cases",)


def parse_scopes(scopes: Sequence[str] | None) -> str:
    """The scopes of a new token as stored (space-separated, in SCOPES order), or
    InvalidInput naming the unknown one."""
    wanted = set(scopes or DEFAULT_SCOPES)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}",
            [{"loc": "scope", "msg": f"unknown scope {unknown[0]}"}],
        )
    return " ".join(s for s in SCOPES if s in wanted)


@functools.cache
def _hasher() -> PasswordHasher:
    # Imported on the first password, not when the server starts: argon2 loads a C library
    # through cffi (about 0.4 MB the server would carry idle; bench/serve_footprint.py).
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of the password (refusing short ones)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"the password is too short: use at least {MIN_PASSWORD} characters",
            [{"loc": "password", "msg": "too short"}],
        )
    return _hasher().hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether the password matches the stored argon2 hash (False for no hash or a bad one).
    Touches no database: a caller may run it outside any transaction."""
    from argon2.exceptions import InvalidHashError, VerificationError  # lazily: see _hasher()

    if not stored_hash:
        return False
    try:
        with _ARGON2_SLOTS:
            _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return True


def upgrade_hash(agent: Agent, password: str) -> None:
    """Re-hash a verified password whose hash has old parameters."""
    if agent.password_hash and _hasher().check_needs_rehash(agent.password_hash):
        agent.password_hash = _hasher().hash(password)


def verify_password(agent: Agent, password: str) -> bool:
    """Whether the password matches; a hash with old parameters is upgraded in place."""
    if not password_matches(agent.password_hash, password):
        return False
    upgrade_hash(agent, password)
    return True


def create_agent(
    *,
    session: Session,
    username: str,
    role: Role,
    now: datetime,
    password: str | None = None,
    group: str | None = None,
    display_name: str = "",
    telegram_user_id: int | None = None,
    actor: str = "cli",
) -> Agent:
    """A new agent, or InvalidInput if the username is taken or malformed."""
    if not username or not username.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise InvalidInput(
            "a username is letters, digits, '.', '_' or '-'",
            [{"loc": "username", "msg": "bad username"}],
        )
    if session.scalar(select(Agent.id).where(Agent.username == username)) is not None:
        raise InvalidInput(
            f"agent {username} already exists", [{"loc": "username", "msg": "taken"}]
        )
    agent = Agent(
        username=username,
        role=role.value,
        group=group,
        display_name=display_name or username,
        password_hash=hash_password(password) if password else None,
        telegram_user_id=telegram_user_id,
        created_at=now,
    )
    session.add(agent)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="agent.created",
        target=username,
        now=now,
        role=role.value,
        group=group,
    )
    return agent


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    *,
    session: Session,
    username: str,
    now: datetime,
    name: str = "",
    actor: str = "cli",
    scopes: Sequence[str] | None = None,
) -> str:
    """A new bearer token for the agent, with these scopes (default: cases only); only its
    hash is stored, so this is the one chance to read it."""
    stored = parse_scopes(scopes)
    agent = session.scalar(select(Agent).where(Agent.username == username))
    if agent is None:
        raise NotFound(f"no agent {username}: create it first with create-agent")
    token = "as_" + secrets.token_urlsafe(32)
    row = ApiToken(agent=agent, token_hash=_digest(token), name=name, created_at=now, scopes=stored)
    session.add(row)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="token.created",
        target=username,
        now=now,
        token_id=row.id,
        name=name,
        scopes=stored,
    )
    return token


def revoke_token(*, session: Session, token: ApiToken, actor: str, now: datetime) -> None:
    """Revoke a token: the next call with it gets 401. Revoking twice changes nothing."""
    if token.revoked_at is not None:
        return
    token.revoked_at = now
    audit(
        session=session,
        actor=actor,
        action="token.revoked",
        target=token.agent.username,
        now=now,
        token_id=token.id,
    )


def audit(
    *, session: Session, actor: str, action: str, target: str, now: datetime, **data: Any
) -> AuditEntry:
    """Append to the desk's own audit trail (changes that belong to no case)."""
    entry = AuditEntry(at=now, actor=actor, action=action, target=target, data=data)
    session.add(entry)
    return entry


# Built once: every API request runs it (its options and cache key cost more than the lookup).
_LIVE_TOKEN = (
    select(ApiToken)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
    # Its agent in the same statement: every API request reads both.
    .options(joinedload(ApiToken.agent, innerjoin=True))
)


def live_token(*, session: Session, token: str) -> ApiToken | None:
    """The unrevoked token row of an active agent for this bearer token, or None. Reads only
    (a GET's read-only transaction may call it); `token_is_stale` says when to `touch_token`."""
    row = session.scalar(_LIVE_TOKEN, {"token_hash": _digest(token)})
    if row is None or not row.agent.active:
        return None
    return row


def token_is_stale(row: ApiToken, now: datetime) -> bool:
    """Its last use is recorded at most every few minutes, so reading the API does not write
    on every call."""
    return row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5)


def touch_token(*, session: Session, token_id: int, now: datetime) -> None:
    """Record a token's use (by id: `session` may be another than the one that read it)."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def agent_for_token(*, session: Session, token: str, now: datetime) -> Agent | None:
    """The active agent a bearer token belongs to, or None; records its use in `session`."""
    row = live_token(session=session, token=token)
    if row is None:
        return None
    if token_is_stale(row, now):
        row.last_used_at = now
    return row.agent

"""Log-in throttling: slow guessing down without letting anyone lock an account.

Counting failures per account alone let anyone lock any account (the admin's included) with
five wrong passwords, over and over; and only existing names locked, which told an attacker
which names exist. The rules now:

- Per account *and* address: after `free_failures` failures from one address, that address
  must wait before its next try on that account, the pause doubling with each further failure
  (1 s, 2 s, 4 s ... up to `longest_pause`). The owner, from anywhere else, is not affected.
- Per account, from every address together: past `account_failures` failures in an hour the
  account is paced (one try per `account_pace`), which slows a guesser with many addresses
  without ever refusing the owner for more than that pace.
- Per address, over every name: past `address_failures` failures in an hour, the address is
  paced like a pair (doubling pauses), so trying name after name from one place (each checked
  against a costly argon2 hash) gets no further than guessing one name.
- A username that does not exist is counted exactly like one that does, and a paced attempt is
  refused before any password is checked, whoever the name belongs to: the answers (and the
  work behind them) are the same for known and unknown names.
- A try is counted as a failure *before* its password is checked (`start_attempt`: the counts
  held, read and raised in one short transaction), and taken back if it succeeds. Counted
  after the check, N parallel wrong guesses all passed the pause before the first was counted,
  and each took its argon2 check.

Counts live in the database (tickets/throttle.py), so every process sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tickets import throttle

PAIR = "login"
ACCOUNT = "login_account"
ADDRESS = "login_address"


@dataclass(frozen=True, slots=True)
class LoginRules:
    """The numbers (AFTERSALES_PANEL_* settings)."""

    free_failures: int = 5
    longest_pause: timedelta = timedelta(minutes=15)
    account_failures: int = 50
    account_pace: timedelta = timedelta(seconds=10)
    address_failures: int = 30
    # A pair's count starts again a day after its first failure; an account's, after an hour.
    pair_window: timedelta = timedelta(days=1)
    account_window: timedelta = timedelta(hours=1)


def pause_after(failures: int, rules: LoginRules, free: int | None = None) -> timedelta:
    """How long an address waits after its `failures`-th failure on one account (or, with
    `free` = address_failures, on any accounts)."""
    free = rules.free_failures if free is None else free
    if failures < free:
        return timedelta(0)
    steps = min(failures - free, 30)
    return min(timedelta(seconds=2**steps), rules.longest_pause)


def _keys(username: str, address: str) -> tuple[str, str, str]:
    name = username.strip()
    return throttle.key_of(name, address), throttle.key_of(name), throttle.key_of(address)


def wait_before_login(
    session: Session, *, username: str, address: str, now: datetime, rules: LoginRules
) -> int:
    """Seconds this address must still wait before trying this username (0: go ahead)."""
    pair_key, account_key, address_key = _keys(username, address)
    waits = [timedelta(0)]
    pair = throttle.count(session, scope=PAIR, key=pair_key, now=now, window=rules.pair_window)
    # Only a running pause counts (a clock a little ahead in another process is no pause).
    if pair.last_failed_at is not None and pause_after(pair.failures, rules):
        waits.append(pair.last_failed_at + pause_after(pair.failures, rules) - now)
    account = throttle.count(
        session, scope=ACCOUNT, key=account_key, now=now, window=rules.account_window
    )
    if account.last_failed_at is not None and account.failures >= rules.account_failures:
        waits.append(account.last_failed_at + rules.account_pace - now)
    place = throttle.count(
        session, scope=ADDRESS, key=address_key, now=now, window=rules.account_window
    )
    pause = pause_after(place.failures, rules, free=rules.address_failures)
    if place.last_failed_at is not None and pause:
        waits.append(place.last_failed_at + pause - now)
    longest = max(waits)
    # Rounded up: "wait 0 seconds" would be a lie while any time is left.
    return int(-(-longest.total_seconds() // 1)) if longest > timedelta(0) else 0


def start_attempt(
    session: Session, *, username: str, address: str, now: datetime, rules: LoginRules
) -> int:
    """Before any password is checked: the seconds this try must wait (nothing counted), or 0
    with the try already counted as a failure (`login_succeeded` takes it back). The counts are
    held while they are read and raised (throttle.lock), so of parallel tries only as many as
    the pacing allows get through; the caller commits at once, before the costly check."""
    pair_key, account_key, address_key = _keys(username, address)
    throttle.lock(session, [(PAIR, pair_key), (ACCOUNT, account_key), (ADDRESS, address_key)])
    wait = wait_before_login(session, username=username, address=address, now=now, rules=rules)
    if wait:
        return wait
    throttle.fail(session, scope=PAIR, key=pair_key, now=now, window=rules.pair_window)
    throttle.fail(session, scope=ACCOUNT, key=account_key, now=now, window=rules.account_window)
    throttle.fail(session, scope=ADDRESS, key=address_key, now=now, window=rules.account_window)
    return 0


def login_succeeded(session: Session, *, username: str, address: str) -> None:
    """The address proved it knows the password: its own pacing on this account ends, and the
    try counted ahead is taken back from the account's and the address's counts (which run out
    with their hour)."""
    pair_key, account_key, address_key = _keys(username, address)
    throttle.clear(session, scope=PAIR, key=pair_key)
    throttle.take_back(session, scope=ACCOUNT, key=account_key)
    throttle.take_back(session, scope=ADDRESS, key=address_key)

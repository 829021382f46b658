"""Can the suite's PostgreSQL pass run? `python tests/pg_reachable.py URL` (the Makefile's
PG_TEST_URL, a SQLAlchemy URL such as postgresql+psycopg://postgres@127.0.0.1:5432/test) tries
to log in once and says, in one line, why not: nothing listening, a refused log-in, a missing
database, or the server's own words. Exit 0 when the pass can run, 1 when it cannot, 2 when
the URL is not a PostgreSQL one.

`make test` runs it before the long SQLite pass, so a CI run that must reach PostgreSQL stops
at once rather than after it (CI=true makes the PostgreSQL pass mandatory)."""

from __future__ import annotations

import sys

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def why_not(url: str) -> str | None:
    """None when a log-in to `url` works; else the reason, in words, with what to do."""
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    user = parsed.username or "the current user"
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(conninfo, connect_timeout=3).close()
    except psycopg.Error as exc:
        said = str(exc)
        # psycopg gives no SQLSTATE for a failed connection: the server's words tell.
        if "does not exist" in said and "database" in said:
            return (
                f"PostgreSQL at {where} has no database {parsed.database!r}: create it "
                f"(createdb -h {parsed.host or 'localhost'} -U {parsed.username or 'postgres'} "
                f"{parsed.database}) or name another in PG_TEST_URL"
            )
        if "authentication failed" in said or ("role" in said and "does not exist" in said):
            return (
                f"PostgreSQL at {where} refused the log-in of {user}: "
                f"{_server_words(said)}; fix the user or password in PG_TEST_URL"
            )
        if "Connection refused" in said or "timeout expired" in said:
            return (
                f"nothing answers at {where} (PostgreSQL not running there?): start it, "
                f"or point PG_TEST_URL at one"
            )
        return f"PostgreSQL at {where} cannot be used: {_server_words(said)}"
    return None


def _server_words(said: str) -> str:
    """The server's reason, without psycopg's preamble and hints."""
    first = said.strip().splitlines()[0]
    return first.split("FATAL:", 1)[-1].strip()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/pg_reachable.py POSTGRESQL_URL", file=sys.stderr)
        return 2
    try:
        if not make_url(argv[0]).drivername.startswith("postgresql"):
            raise ArgumentError("not PostgreSQL")
    except ArgumentError:
        print(
            "PG_TEST_URL is not a PostgreSQL URL: use postgresql+psycopg://user@host:5432/database",
            file=sys.stderr,
        )
        return 2
    reason = why_not(argv[0])
    if reason is None:
        url = make_url(argv[0])
        print(
            f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} ({url.database}) answers"
        )
        return 0
    print(reason, file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""What `aftersales serve` checks before it serves, run as a child process of it
(`python -m api.preflight`) while the server builds its app beside it:

- the database schema is current: SQLite is migrated (nothing to do when current); any other
  database is only checked, and a schema behind stops the start;
- the reply scripts (the bundled ones with the shop's overrides) all render with their samples
  and pass their checks; one that breaks a check stops the start with the file and the reason.

Why a child: Alembic (about 11 MB), and everything the scripts check allocates, rendering every
script in both languages with Babel's locale data (about 3 MB), stay out of the long-lived
server (bench/serve_footprint.py); the server loads the same scripts without rendering them
again (`create_app(..., scripts_checked=True)`). Exit 0 when serve may start, 2 (or 3, the
schema behind) with the reason on stderr when it may not.
"""

from __future__ import annotations

import contextlib
import io
import sys

from sqlalchemy.exc import OperationalError

from api.cli import database_unusable, migrate, settings_or_exit
from tickets.exceptions import InvalidInput
from tickets.messages.scripts import LibraryRefused, bundled_scripts_dir, load_library
from tickets.policy.rules import load_policy


def main() -> int:
    settings = settings_or_exit(warn=False)  # serve, its parent, has warned
    try:
        policy = load_policy(settings.policy_file)
    except InvalidInput:
        # The server reads the same file while this runs, and says what is wrong with it.
        return 2
    # With JSON logs every line of serve's output is JSON: the success line is left out (a
    # failure still says why on stderr).
    quiet = contextlib.redirect_stdout(io.StringIO()) if settings.log_format == "json" else None
    try:
        with quiet or contextlib.nullcontext():
            migrated = migrate(settings, check=not settings.is_sqlite)
    except OperationalError as exc:
        print(database_unusable(exc), file=sys.stderr)
        return 2
    if migrated:
        return migrated
    try:
        load_library(bundled_scripts_dir(), settings.scripts_dir, limits=policy.script_limits())
    except LibraryRefused as exc:
        print("error: the reply scripts do not pass their checks:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

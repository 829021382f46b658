"""The layers hold: the core (tickets/) imports no front end and no drawing library, and keeps
no Telegram rule; a SQLite deployment never loads the PostgreSQL dialect."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "tickets"

# What the core may not import: the front ends (DESIGN.md: bot/ and api/ import tickets/, never
# the reverse), their frameworks, and drawing (the demo's pictures are the host's).
FORBIDDEN = ("api", "bot", "aiogram", "fastapi", "starlette", "PIL.ImageDraw")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_imports_no_front_end_and_draws_nothing() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)
    ]
    assert found == []


def test_the_core_knows_no_telegram_caption_limit() -> None:
    # Telegram's 1024-character caption is the bot's rule (bot/render.py): the core hands each
    # channel a reply and its files, and the channel cuts it.
    found = [
        str(path.relative_to(ROOT))
        for path in sorted(CORE.rglob("*.py"))
        if "CAPTION" in path.read_text(encoding="utf-8")
    ]
    assert found == []


# Built and used in a fresh interpreter, as `aftersales serve` does once its preflight child
# has migrated the database: the app on SQLite with the bot on (its storage, its pacing, its
# middlewares), a request, a refused log-in (the throttle's upsert).
_SQLITE_SERVE = """
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from tickets.settings import Settings

home = Path(sys.argv[1])
url = f"sqlite:///{home / 'desk.db'}"
settings = Settings(
    database_url=url,
    media_dir=home / "media",
    telegram_token="123456:layers-test",
    telegram_api_url="http://127.0.0.1:9",
    _env_file=None,
)
client = TestClient(create_app(settings))
assert client.get("/healthz").status_code == 200
login = client.get("/panel/login")
token = login.text.split('name="login_token" value="')[1].split('"')[0]
refused = client.post(
    "/panel/login",
    data={"username": "nobody", "password": "wrong", "login_token": token, "lang": "en"},
)
assert refused.status_code < 500 and "Log out" not in refused.text, refused.status_code
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.")))
"""


def test_a_sqlite_deployment_never_loads_the_postgresql_dialect(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tickets.db import upgrade

    # Migrated apart (Alembic's own modules load the PostgreSQL dialect; serve never loads
    # Alembic: its preflight child migrates).
    upgrade(f"sqlite:///{tmp_path / 'desk.db'}")
    done = subprocess.run(
        [sys.executable, "-c", _SQLITE_SERVE, str(tmp_path)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.strip().splitlines()[-1]
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert "sqlalchemy.dialects.postgresql" not in loaded


def test_postgresql_still_gets_its_hash_and_partial_indexes() -> None:
    # Left out of the models' Index(...) so SQLite never loads the dialect, they are put back
    # by the engine for PostgreSQL (no connection made here).
    from sqlalchemy.schema import CreateIndex

    from tickets.db import make_engine
    from tickets.models import Base

    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    ddl = {
        str(index.name): str(CreateIndex(index).compile(dialect=engine.dialect))
        for table in Base.metadata.tables.values()
        for index in table.indexes
    }
    assert "USING hash (address)" in ddl["ix_orders_address"]
    for name in ("ix_tickets_open_assignee_created", "ix_tickets_open_group_created"):
        assert "WHERE status NOT IN" in ddl[name]


def test_every_module_over_500_lines_says_why_at_its_top() -> None:
    # The house rule (issue 13): no module over about 500 lines without a reason stated in the
    # first paragraph of its docstring ("Over 500 lines as one file: ...").
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0].startswith(".") or "node_modules" in parts:
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= 500:
            continue
        doc = ast.get_docstring(ast.parse(text), clean=False) or ""
        if "as one file" not in doc.split("\n\n")[0]:
            unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == []

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

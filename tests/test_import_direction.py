"""The import direction of DESIGN.md, read from the code itself: tickets/ (the core) imports
neither bot/ nor api/; bot/ never imports api/; api/ imports bot/ only in the composition root
(api/app.py, api/cli.py), which builds the bot's parts and hands them in. Imports inside
functions count too (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where api/ may import bot/: the composition root.
COMPOSITION_ROOT = {"api/app.py", "api/cli.py"}
# package -> the packages it must not import
FORBIDDEN = {"tickets": {"api", "bot"}, "bot": {"api"}, "api": {"bot"}}


def imported_packages(path: Path) -> dict[str, int]:
    """The top-level packages a module imports (anywhere in it), with the first line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def violations(root: Path) -> list[str]:
    found = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if package == "api" and rel in COMPOSITION_ROOT:
                continue
            for name, line in imported_packages(path).items():
                if name in forbidden:
                    found.append(f"{rel}:{line} imports {name}")
    return found


def test_dependencies_point_inwards_only() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        (
            "api/chat/__init__.py",
            "def f():\n    from bot.web import WEB_NAME\n",
            "api/chat/__init__.py:2 imports bot",
        ),
        ("tickets/x.py", "import api.app\n", "tickets/x.py:1 imports api"),
        ("bot/x.py", "from api.chat import install_chat\n", "bot/x.py:1 imports api"),
    ],
)
def test_a_wrong_way_import_is_caught_even_inside_a_function(
    tmp_path: Path, rel: str, source: str, expected: str
) -> None:
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    # The composition root may import the bot.
    (tmp_path / "api").mkdir(exist_ok=True)
    (tmp_path / "api" / "app.py").write_text("from bot.runtime import BotRuntime\n")
    assert violations(tmp_path) == [expected]

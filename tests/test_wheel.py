"""The package as a shop installs it: the wheel built from this checkout, installed into a
fresh virtual environment, run from a directory that is not the checkout.

The environment gets the wheel alone (`--no-deps`); its dependencies come from the running
interpreter's site-packages, added with a `.pth` line (a path only: no `.pth` file of that
directory runs, so an editable install of the checkout found there stays out). Nothing of the
checkout is on the path: every template, migration and static file must come from the wheel.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.serve import Serve

ROOT = Path(__file__).resolve().parent.parent
# What a checkout holds that is not source (copied without them, so the build sees only source).
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "data",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "test-artifacts",
    ".env",
)


@dataclass
class Installed:
    bin: Path
    elsewhere: Path
    build_log: str


def _setuptools_builds_offline() -> bool:
    """Whether this interpreter's setuptools meets pyproject's build requirement (77: the SPDX
    license field); then the build needs no package index."""
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77


def _run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=env
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: pip builds in the source tree and would leave build/ in the checkout.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    # With an older setuptools here, pip fetches the build backend from the package index.
    isolation = ["--no-build-isolation"] if _setuptools_builds_offline() else []
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            *isolation,
            "-w",
            str(tmp / "dist"),
            str(source),
        ]
    )
    (wheel,) = (tmp / "dist").glob("aftersales-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    purelib = Path(
        _run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            env=_env(),
        ).stdout.strip()
    )
    python = str(venv / "bin" / "python")
    # Without PYTHONPATH: pip would see the checkout's metadata there, if any.
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", str(wheel)],
        env=_env(),
    )
    # After the install: with the dependencies visible, pip would find the project's own
    # (editable) install among them and call the wheel already satisfied.
    (purelib / "_project_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    elsewhere = tmp / "shop"
    elsewhere.mkdir()
    return Installed(bin=venv / "bin", elsewhere=elsewhere, build_log=build.stdout + build.stderr)


def _env() -> dict[str, str]:
    """The environment of a command run in the venv: nothing pointing at the checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


@pytest.fixture
def shop(installed: Installed, tmp_path: Path) -> Iterator[Serve]:
    """A shop served by the installed `aftersales`, from a directory of its own."""
    serve = Serve(
        database_url=f"sqlite:///{tmp_path / 'shop.db'}",
        data_dir=tmp_path / "shop",
        api_url=None,
        token=None,
        serve_args=("--no-scheduler",),
        command=(str(installed.bin / "aftersales"),),
    )
    try:
        yield serve
    finally:
        serve.stop()


def test_the_wheel_builds_without_setuptools_warnings(installed: Installed) -> None:
    assert "Deprecat" not in installed.build_log
    assert "BuildBackendWarning" not in installed.build_log


def test_the_installed_code_is_the_wheel_s_not_the_checkout_s(installed: Installed) -> None:
    shown = _run(
        [
            str(installed.bin / "python"),
            "-c",
            "import api, bot, migrations, templates, tickets; "
            "print('\\n'.join(m.__file__ for m in (api, bot, migrations, templates, tickets)))",
        ],
        cwd=installed.elsewhere,
        env=_env(),
    )
    for path in shown.stdout.split():
        assert Path(path).is_relative_to(installed.bin.parent), path
    # The package's version is the code's own (pyproject reads tickets.__version__).
    from tickets import __version__

    version = _run(
        [
            str(installed.bin / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('aftersales'))",
        ],
        cwd=installed.elsewhere,
        env=_env(),
    )
    assert version.stdout.strip() == __version__


def test_check_and_serve_work_from_another_directory(shop: Serve) -> None:
    # A new SQLite database: serve migrates it with the wheel's migrations.
    shop.start()
    health = httpx.get(f"{shop.url}/healthz", timeout=30)
    assert health.json() == {"status": "ok", "database": "ok"}
    login = httpx.get(f"{shop.url}/panel/login", timeout=30)
    assert login.status_code == 200 and 'name="password"' in login.text
    css = httpx.get(f"{shop.url}/static/panel.css", timeout=30)
    assert css.status_code == 200 and css.text.strip()
    icon = httpx.get(f"{shop.url}/static/favicon.svg", timeout=30)
    assert icon.status_code == 200 and "<svg" in icon.text
    # The panel in Chinese: its catalog came with the wheel too.
    zh = httpx.get(f"{shop.url}/panel/login", params={"lang": "zh-CN"}, timeout=30)
    assert zh.status_code == 200 and "登录" in zh.text
    checked = shop.cli("check")
    assert "ok    database schema up to date" in checked and "FAIL" not in checked
    shop.stop()
    assert shop.bad_log_lines() == []

"""README.md as a new user reads it: its shell examples run as written against a real
`aftersales serve` with the demo shop, its Order JSON example is accepted by the API, and it
links to nothing outside the repository (a user has the repository, nothing beside it)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.fakes.serve import Serve

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Where the README's examples say the desk listens (`make run`'s default address).
README_URL = "http://127.0.0.1:8000"
# The README's sh blocks that no test can run as written, each by how its first line starts,
# and why.
NOT_RUN = {
    # The two commands: `make test` is what runs this test, and `make run` serves until stopped.
    "make run": "the README's first commands (set up a venv, run until stopped, run every test)",
    # Needs a PostgreSQL server named `db` and four processes on port 8000: a machine of its own
    # (the process set itself is tested in tests/test_multiproc.py).
    "export AFTERSALES_DATABASE_URL=postgresql+psycopg://aftersales:secret@db/aftersales": (
        "a deployment"
    ),
    # A server's set-up as root (a system user, systemd, nginx); the process set it starts is
    # tested in tests/test_production_processes.py.
    "# 0. What the desk stands on": "a production server's installation",
}
# Hosts an example may name: this machine, example domains, the nginx example's upstream.
EXAMPLE_HOSTS = re.compile(r"^(127\.0\.0\.1|localhost|\[::1\]|(.+\.)?example\.com|aftersales)$")


def fenced(language: str) -> list[str]:
    """The README's code blocks fenced as `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.M | re.S)


def order_json_example() -> dict[str, Any]:
    """The ```json block of the README's *Order JSON* section."""
    section = README.split("\n### Order JSON\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```json\n(.*?)^```$", section, flags=re.M | re.S)
    assert block, "the Order JSON section has no ```json example"
    example: dict[str, Any] = json.loads(block.group(1))
    return example


def test_the_readme_links_to_nothing_outside_the_repository() -> None:
    assert "../" not in README, "a path out of the repository"
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        assert not urlsplit(target).scheme, f"a link out of the repository: {target}"
        path = target.split("#", 1)[0]
        assert not path or (ROOT / path).exists(), f"a link to a missing file: {target}"
    for url in re.findall(r"\bhttps?://[^\s`'\"<>)]+", README):
        host = urlsplit(url.rstrip(".,;:")).netloc.rsplit("@", 1)[-1]
        host = re.sub(r":\d+$", "", host)
        assert EXAMPLE_HOSTS.match(host), f"an address outside this machine: {url}"


def test_the_order_json_example_is_accepted(api: Any) -> None:
    example = order_json_example()
    r = api.as_("shop").post("/api/v1/orders", json=example)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == [o["order_no"] for o in example["orders"]]
    stored = api.get(f"/api/v1/orders/{example['orders'][0]['order_no']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["customer"]["name"] == example["orders"][0]["customer"]["name"]
    assert [line["sku"] for line in stored.json()["lines"]] == [
        line["sku"] for line in example["orders"][0]["lines"]
    ]


def test_every_shell_example_runs_as_written(fresh_db_url: str, tmp_path: Path) -> None:
    blocks = fenced("sh")
    skipped = [b for b in blocks if b.startswith(tuple(NOT_RUN))]
    assert len(skipped) == len(NOT_RUN), "NOT_RUN names a block the README no longer has"
    runnable = [b for b in blocks if b not in skipped]
    assert runnable, "no example to run"

    serve = Serve(
        database_url=fresh_db_url,
        data_dir=tmp_path / "shop",
        api_url=None,
        token=None,
        serve_args=("--no-scheduler",),
    )
    admin_token = serve.setup(in_process=True)  # migrate and the demo shop, as `make run`
    # Where the examples run: the checkout's `.venv/bin/aftersales` (this checkout's code) and
    # the Order JSON example saved as orders.json, as the README says.
    here = serve.data_dir
    venv_bin = here / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    command = venv_bin / "aftersales"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m api.cli "$@"\n', encoding="utf-8")
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    (here / "orders.json").write_text(json.dumps(order_json_example()), encoding="utf-8")
    env = {
        **serve._env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    serve.start()
    try:
        for block in runnable:
            script = block.replace(README_URL, serve.url)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=here,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"{block}\n---\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr, done.stderr
        # What the JSON API example did, seen through the API.
        auth = {"Authorization": f"Bearer {admin_token}"}
        with httpx.Client(base_url=serve.url, headers=auth, timeout=30) as client:
            pushed = order_json_example()["orders"][0]["order_no"]
            assert client.get(f"/api/v1/orders/{pushed}").status_code == 200
            cases = client.get("/api/v1/tickets", params={"order_no": "DEMO-0005", "limit": 50})
            assert cases.status_code == 200, cases.text
            phoned = [c for c in cases.json()["data"] if c["channel"] == "phone"]
            assert len(phoned) == 1, cases.json()
            case = client.get(f"/api/v1/tickets/{phoned[0]['number']}").json()
            assert case["status"] == "resolved", case["status"]
            assert case["description"] == "rude answer on the phone"
            # What the webhooks example subscribed.
            hooks = client.get("/api/v1/webhooks")
            assert hooks.status_code == 200, hooks.text
            assert "https://erp.example.com/aftersales" in hooks.text, hooks.text
    finally:
        serve.stop()
    assert serve.bad_log_lines() == []


def test_every_command_the_readme_names_exists_as_written() -> None:
    """Each `aftersales ...` the prose names is a real subcommand, and each written out with
    its arguments (no placeholder such as USER or [--check]) parses with the command's own
    parser."""
    import argparse

    from api.cli import build_parser

    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    paragraphs = README.split("\n\n")
    checked = 0
    for paragraph in paragraphs:
        for line in re.findall(r"`(?:\.venv/bin/)?aftersales ([^`]*)`", paragraph):
            words = line.replace("\\|", "|").split()
            if words[0].startswith("-"):
                # The command's own option (`aftersales --version`), before any subcommand.
                assert words[0] in parser._option_string_actions, f"`aftersales {line}`"
                continue
            if words[0] not in subparsers:
                # A command announced, not yet built, says so where it is named.
                assert "Not yet" in paragraph, f"`aftersales {line}` is no command"
                continue
            if len(words) == 1:
                continue  # a command named, not written out (`aftersales backup` makes ...)
            if any(w.isupper() or w.startswith("[") or "|" in w or "…" in w for w in words):
                continue
            parser.parse_args(words)  # argparse exits (SystemExit) on what it does not take
            checked += 1
    assert checked >= 3

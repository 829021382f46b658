"""`aftersales backup` and `aftersales restore` as an operator runs them: real processes, real
databases (a SQLite file; a fresh PostgreSQL database in the PostgreSQL pass, with pg_dump and
pg_restore).

- A desk backed up while it works (the real `serve`, customers filing requests with photos
  through the bot over a fake Telegram, an agent writing notes through the API), restored into
  another database and media folder: every case, message and photo that existed when the
  backup began is there, each photo's bytes intact, and the restored desk answers for every
  case through the API with the old desk's token. The running desk never noticed.
- A restore refuses a backup from a newer schema, one into a database that holds data (unless
  --force), and a SQLite database a serve is running on; a PostgreSQL backup without pg_dump
  on PATH says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import PG_URL, _fresh_pg_database
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.customers import converse, make_customers, seed_orders
from tests.fakes.serve import ROOT, Serve, ServeFailed
from tickets.db import make_engine, make_sessionmaker
from tickets.models import Attachment, Message, Ticket

CUSTOMERS = 6
CONVERSATIONS_TIMEOUT = 60.0


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty migrated databases: the desk's and the one it is restored into."""
    if PG_URL:
        with _fresh_pg_database(PG_URL) as live, _fresh_pg_database(PG_URL) as other:
            yield live, other
        return
    yield f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'restored.db'}"


def contents(database_url: str) -> tuple[set[str], set[int], dict[int, tuple[str, str]]]:
    """Case numbers, message ids, and attachments (id: sha256, storage key) of a database."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            numbers = set(s.scalars(select(Ticket.number).order_by(Ticket.id)))
            messages = set(s.scalars(select(Message.id).order_by(Message.id)))
            files = {
                a.id: (a.sha256, a.storage_key)
                for a in s.scalars(select(Attachment).order_by(Attachment.id))
            }
    finally:
        engine.dispose()
    return numbers, messages, files


def test_a_desk_backed_up_mid_traffic_is_restored_whole(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    live_url, other_url = databases
    customers = make_customers(CUSTOMERS)
    fake = FakeBotApi().start()
    desk = Serve(database_url=live_url, data_dir=tmp_path / "live", api_url=fake.url)
    elsewhere = Serve(database_url=other_url, data_dir=tmp_path / "elsewhere", api_url=None)
    archive = tmp_path / "desk.tar"
    stop_notes = threading.Event()
    notes: list[int] = []
    conversations: list[BaseException] = []
    with ExitStack() as stack:
        stack.callback(fake.stop)
        token = desk.setup(in_process=True)
        seed_orders(live_url, customers)
        desk.start()
        stack.callback(desk.stop)
        demo_numbers, _, demo_files = contents(live_url)

        def talk() -> None:
            try:
                fake.run(converse(fake, customers, step_timeout=15), CONVERSATIONS_TIMEOUT)
            except BaseException as exc:  # reported below
                conversations.append(exc)

        def write_notes() -> None:
            """An agent adds internal notes to a demo case through the API, one after another."""
            number = sorted(demo_numbers)[0]
            with httpx.Client(base_url=desk.url, timeout=20) as client:
                while not stop_notes.is_set():
                    r = client.post(
                        f"/api/v1/tickets/{number}/replies",
                        json={"text": f"note {len(notes)}", "internal": True},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    notes.append(r.status_code)
                    time.sleep(0.05)

        talker = threading.Thread(target=talk, name="customers")
        writer = threading.Thread(target=write_notes, name="notes")
        talker.start()
        writer.start()
        stack.callback(stop_notes.set)
        # Mid-traffic: some customers have filed their request with its photo, not all.
        deadline = time.monotonic() + CONVERSATIONS_TIMEOUT
        while len(contents(live_url)[2]) < len(demo_files) + 2:
            assert time.monotonic() < deadline, "no customer's photo arrived"
            time.sleep(0.2)
        before = contents(live_url)
        out = desk.cli("backup", str(archive))
        assert "backup written to" in out
        if not PG_URL:
            # The desk's own SQLite file is not replaced under a running serve.
            with pytest.raises(ServeFailed, match="stop serve first"):
                desk.cli("restore", "--force", str(archive))
        talker.join(CONVERSATIONS_TIMEOUT + 10)
        stop_notes.set()
        writer.join(30)
        after = contents(live_url)

    # The desk kept working through the backup.
    assert not conversations, conversations
    assert all(c.done for c in customers), [c.problem for c in customers if not c.done]
    assert notes and set(notes) == {201}, notes
    assert desk.bad_log_lines() == []

    out = elsewhere.cli("restore", str(archive))
    assert "restored" in out
    numbers, messages, files = contents(other_url)
    # Everything that existed when the backup began, and nothing that never existed.
    assert before[0] <= numbers <= after[0]
    assert before[1] <= messages <= after[1]
    assert before[2].items() <= files.items() <= after[2].items()
    assert len(before[0]) > len(demo_numbers)  # customers' cases were among them
    media = elsewhere.data_dir / "media"
    for sha, key in files.values():
        assert hashlib.sha256((media / key).read_bytes()).hexdigest() == sha, key

    # The restored desk serves every case, with the old desk's token.
    from api.app import create_app
    from tickets.settings import Settings

    settings = Settings(database_url=other_url, media_dir=media, _env_file=None)
    with TestClient(create_app(settings, scheduler=False)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for number in sorted(numbers):
            r = client.get(f"/api/v1/tickets/{number}", headers=headers)
            assert r.status_code == 200, (number, r.text)
        a_photo = min(i for i in files if i not in demo_files)
        r = client.get(f"/api/v1/attachments/{a_photo}", headers=headers)
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == files[a_photo][0]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def desk_env(database_url: str, media: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "AFTERSALES_DATABASE_URL": database_url,
        "AFTERSALES_MEDIA_DIR": str(media),
    }


def agents(env: dict[str, str]) -> set[str]:
    from tickets.models import Agent

    engine = make_engine(env["AFTERSALES_DATABASE_URL"])
    try:
        with make_sessionmaker(engine)() as s:
            return set(s.scalars(select(Agent.username).order_by(Agent.username)))
    finally:
        engine.dispose()


def with_manifest(archive: Path, out: Path, **changes: str) -> Path:
    """A copy of `archive` whose manifest says `changes`."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member)
            if member.name == "manifest.json":
                assert data is not None
                raw = json.dumps({**json.loads(data.read()), **changes}).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            dst.addfile(member, data)
    return out


def test_restore_refuses_a_newer_schema_and_a_database_with_data_unless_forced(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    first = desk_env(databases[0], tmp_path / "media1")
    second = desk_env(databases[1], tmp_path / "media2")
    archive = tmp_path / "first.tar"
    for env, name in ((first, "alice"), (second, "bob")):
        assert cli(env, "migrate").returncode == 0
        made = cli(env, "create-agent", name, "--password-stdin")
        assert made.returncode == 0, made.stderr
    made = cli(first, "backup", str(archive))
    assert made.returncode == 0, made.stderr

    # A backup from a release newer than this one: refused, nothing touched.
    newer = with_manifest(archive, tmp_path / "newer.tar", schema_revision="9999_from_the_future")
    r = cli(second, "restore", "--force", str(newer))
    assert r.returncode == 2
    assert "9999_from_the_future" in r.stderr and "newer than this build knows" in r.stderr
    assert agents(second) == {"bob"}
    # A backup of the other kind of database: refused, nothing touched.
    other_kind = "sqlite" if PG_URL else "postgresql"
    foreign = with_manifest(archive, tmp_path / "foreign.tar", backend=other_kind)
    r = cli(second, "restore", "--force", str(foreign))
    assert r.returncode == 2
    assert f"restore it into a {other_kind} database" in r.stderr
    assert agents(second) == {"bob"}

    # A database that holds data is not overwritten unless asked.
    r = cli(second, "restore", str(archive))
    assert r.returncode == 2
    assert "already holds data" in r.stderr and "--force" in r.stderr
    assert agents(second) == {"bob"}
    r = cli(second, "restore", "--force", str(archive))
    assert r.returncode == 0, r.stderr
    assert agents(second) == {"alice"}

    # Not a backup at all.
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar file")
    r = cli(second, "restore", "--force", str(junk))
    assert r.returncode == 2 and "not an aftersales backup" in r.stderr
    assert agents(second) == {"alice"}


def test_a_postgresql_backup_without_pg_dump_says_so(tmp_path: Path) -> None:
    env = desk_env("postgresql+psycopg://aftersales@127.0.0.1:1/nowhere", tmp_path / "media")
    env["PATH"] = str(tmp_path)  # no pg_dump here
    r = cli(env, "backup", str(tmp_path / "x.tar"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: pg_dump is not on PATH: install PostgreSQL's client tools (Debian: apt install "
        "postgresql-client, the server's major version or newer)"
    ]
    assert not (tmp_path / "x.tar").exists()


def test_the_archive_is_readable_by_the_desks_user_only(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    # The nightly timer runs with systemd's umask 022: the archive (every customer's phone and
    # address, the agents' password hashes) was once world-readable on the host.
    env = desk_env(databases[0], tmp_path / "media")
    assert cli(env, "migrate").returncode == 0
    old = os.umask(0o022)  # the child inherits it
    try:
        made = cli(env, "backup", str(tmp_path / "nightly.tar"))
    finally:
        os.umask(old)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "nightly.tar").stat().st_mode) == 0o600

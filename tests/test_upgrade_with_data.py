"""An upgrade with data, as a shop does it: a database at the previous release's schema holding
the demo shop as that release loaded it (tests/data/previous_release/, made with its own code),
migrated to this build's newest schema, then read through the JSON API: every case is there
with its messages, attachments and events, and the desk works on it (an agent's note is
added). On SQLite, and on PostgreSQL in the PostgreSQL pass.

The previous release is main before this wave's migrations (0002_reach, 0002_web_chat): schema
0002_peers. When a release is tagged, the fixture is made again from it (dump_demo.py says how).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, text

from tests.conftest import PG_URL, _fresh_pg_database
from tickets.db import alembic_config, make_engine, make_sessionmaker, unit_of_work, upgrade

FIXTURE = Path(__file__).resolve().parent / "data" / "previous_release" / "demo.json.gz"


def previous_release() -> dict[str, Any]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def untagged(value: Any) -> Any:
    """A value of the fixture as the database takes it (dump_demo.py's tags undone)."""
    if isinstance(value, dict) and len(value) == 1:
        (tag, raw), *_ = value.items()
        if tag == "$dt":
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)  # stored in UTC
        if tag == "$date":
            return date.fromisoformat(raw)
        if tag == "$dec":
            return Decimal(raw)
    return value


@pytest.fixture
def old_database(tmp_path: Path) -> Iterator[str]:
    """An empty database at the previous release's schema."""
    revision = previous_release()["schema_revision"]
    if PG_URL:
        with _fresh_pg_database(PG_URL) as url:
            command.downgrade(alembic_config(url), "base")
            upgrade(url, revision)
            yield url
        return
    url = f"sqlite:///{tmp_path / 'previous.db'}"
    upgrade(url, revision)
    yield url


def load_rows(database_url: str, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Every row of the fixture, through the old schema's own tables (reflected)."""
    engine = make_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.begin() as conn:
            for table in meta.sorted_tables:
                rows = tables.get(table.name)
                if rows:
                    conn.execute(
                        table.insert(), [{k: untagged(v) for k, v in r.items()} for r in rows]
                    )
            if engine.dialect.name == "postgresql":
                # The ids were given: each sequence goes on after the largest, as after a load.
                for table in meta.sorted_tables:
                    if "id" in table.columns and tables.get(table.name):
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f'(SELECT max(id) FROM "{table.name}"))'
                            )
                        )
    finally:
        engine.dispose()


def test_the_previous_release_with_the_demo_shop_upgrades_and_every_case_reads(
    old_database: str, tmp_path: Path
) -> None:
    from api.app import create_app
    from tickets.auth import create_token
    from tickets.models import utcnow
    from tickets.settings import Settings

    old = previous_release()
    tables = old["tables"]
    assert old["schema_revision"] == "0002_peers"
    load_rows(old_database, tables)

    upgrade(old_database)  # to this build's newest schema

    engine = make_engine(old_database)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            token = create_token(session=session, username="admin", now=utcnow(), name="upgrade")
    finally:
        engine.dispose()
    settings = Settings(database_url=old_database, media_dir=tmp_path / "media", _env_file=None)
    ticket_ids = {t["id"]: t["number"] for t in tables["tickets"]}
    messages = Counter(ticket_ids[m["ticket_id"]] for m in tables["messages"])
    files = Counter(ticket_ids[a["ticket_id"]] for a in tables["attachments"])
    events = Counter(ticket_ids[e["ticket_id"]] for e in tables["events"])
    with TestClient(create_app(settings, scheduler=False)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/tickets", params={"limit": 200}, headers=headers)
        assert listed.status_code == 200, listed.text
        assert {t["number"] for t in listed.json()["data"]} == set(ticket_ids.values())
        for row in sorted(tables["tickets"], key=lambda t: t["id"]):
            number = row["number"]
            got = client.get(f"/api/v1/tickets/{number}", headers=headers)
            assert got.status_code == 200, (number, got.text)
            case = got.json()
            assert (case["status"], case["kind"]) == (row["status"], row["kind"]), number
            assert len(case["messages"]) == messages[number], number
            assert len(case["attachments"]) == files[number], number
            assert len(case["events"]) == events[number], number
        # The upgraded desk works on an old case: a note is added and read back.
        first = min(tables["tickets"], key=lambda t: t["id"])["number"]
        note = client.post(
            f"/api/v1/tickets/{first}/replies",
            json={"text": "checked after the upgrade", "internal": True},
            headers=headers,
        )
        assert note.status_code == 201, note.text
        again = client.get(f"/api/v1/tickets/{first}", headers=headers).json()
        assert again["messages"][-1]["text"] == "checked after the upgrade"

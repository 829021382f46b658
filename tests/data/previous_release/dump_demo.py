"""Writes `demo.json.gz`: the demo shop as the previous release loaded it, row by row, for
tests/test_upgrade_with_data.py (which loads it into a database at that release's schema, on
SQLite or PostgreSQL, and migrates it to the newest).

Made once per release from that release's code, never from this one's (whose demo needs the
newer schema):

    git archive <previous release> | tar -x -C /tmp/prev
    cd /tmp/prev && AFTERSALES_DATABASE_URL=sqlite:////tmp/prev/prev.db \\
        PYTHONPATH=/tmp/prev python -m api.cli demo
    python tests/data/previous_release/dump_demo.py /tmp/prev/prev.db <its schema revision>

Values JSON has no type for are tagged: {"$dt": ISO time (UTC)}, {"$date": ...}, {"$dec": ...}.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, select

HERE = Path(__file__).resolve().parent


def tagged(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    return value


def main(database: str, revision: str) -> None:
    engine = create_engine(f"sqlite:///{database}")
    meta = MetaData()
    meta.reflect(engine)
    tables: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        found = conn.execute(select(meta.tables["alembic_version"])).scalar_one()
        assert found == revision, f"the database is at {found}, not {revision}"
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*order)).mappings()
            tables[table.name] = [{k: tagged(v) for k, v in row.items()} for row in rows]
    out = HERE / "demo.json.gz"
    payload = {"schema_revision": revision, "tables": tables}
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False, sort_keys=True)
    print(f"{out}: {sum(len(r) for r in tables.values())} rows in {len(tables)} tables")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

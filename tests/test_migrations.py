"""Migrations: upgrade, downgrade to nothing, upgrade again, and the models match them."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tickets.db import alembic_config, make_engine
from tickets.models import Base


def test_stairway_and_models_match(fresh_db_url: str) -> None:
    cfg = alembic_config(fresh_db_url)
    revisions = list(ScriptDirectory.from_config(cfg).walk_revisions("base", "heads"))
    assert revisions, "no migrations found"
    # fresh_db_url is already at head: walk every revision down and up again.
    for rev in revisions:
        # A linear history: each revision has one parent (or none).
        assert not isinstance(rev.down_revision, list | tuple), rev.revision
        command.downgrade(cfg, rev.down_revision or "base")
        command.upgrade(cfg, rev.revision)
        command.downgrade(cfg, rev.down_revision or "base")
    engine = make_engine(fresh_db_url)
    try:
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_the_schema_check_reads_the_heads_without_alembic(fresh_db_url: str) -> None:
    from tickets.db import migration_heads, schema_is_current

    heads = migration_heads()
    assert heads == set(ScriptDirectory.from_config(alembic_config(fresh_db_url)).get_heads())
    engine = make_engine(fresh_db_url)
    try:
        assert schema_is_current(engine)
        command.downgrade(alembic_config(fresh_db_url), "base")
        assert not schema_is_current(engine)
    finally:
        engine.dispose()

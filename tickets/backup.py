"""`aftersales backup FILE` and `aftersales restore FILE`: the database and the evidence files
in one archive, taken while the desk runs, restored elsewhere.

The archive is a plain tar (photos are compressed already) holding, in this order:

- `manifest.json`: the archive's format, the database's kind (sqlite | postgresql), its schema
  revision (Alembic's), when it was taken, and how many media files it carries;
- the database: `database.sqlite3` (a copy made with SQLite's online backup API: a consistent
  snapshot taken while `serve` keeps writing) or `database.pgdump` (`pg_dump`'s custom format,
  one consistent snapshot too);
- `media/...`: the attachments folder (AFTERSALES_MEDIA_DIR), file for file.

The database is copied before the media: every file a committed attachment row names was
written before its row was committed (tickets/storage.py stores, then the row is added), so
the archive's media folder holds every file its database names; files stored after the
snapshot come along too, harmless (the store is addressed by content).

A restore refuses an archive whose schema revision this build does not know (a backup from
a newer release: upgrade aftersales first), one of the other database kind, and a target
database that already holds data unless forced. It writes nothing before those checks pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from tickets.db import make_engine, migrations_dir

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
MEDIA = "media"
# A manifest is a few hundred bytes; anything much larger is not one of ours.
MANIFEST_MAX_BYTES = 64 * 1024
# pg_dump / pg_restore of a large shop take minutes; a hung one must still end.
PG_TOOL_TIMEOUT_SECONDS = 6 * 3600


class BackupRefused(Exception):
    """The backup or restore did not happen; the message says why in one sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Manifest:
    format: int
    backend: str  # sqlite | postgresql
    schema_revision: str
    created_at: str
    media_files: int

    @property
    def database_member(self) -> str:
        return SQLITE_MEMBER if self.backend == "sqlite" else PG_MEMBER


def backend_of(database_url: str) -> str:
    """sqlite or postgresql; any other database is refused (the product runs on these two)."""
    name = make_url(database_url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupRefused(f"backups know SQLite and PostgreSQL, not {name}")
    return name


def known_revisions() -> set[str]:
    """Every schema revision this build's migrations know."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory(str(migrations_dir())).walk_revisions()}


# ---------------------------------------------------------------- backup


def backup(*, database_url: str, media_dir: Path, target: Path, now: datetime) -> Manifest:
    """Write the archive to `target` (atomically: a half-written archive never has its name)."""
    backend = backend_of(database_url)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".aftersales-backup-", dir=target.parent) as work:
        dump = Path(work) / "database"
        if backend == "sqlite":
            revision = _sqlite_backup(database_url, dump)
        else:
            revision = _pg_dump(database_url, dump)
        media = _media_files(media_dir)
        manifest = Manifest(
            format=FORMAT,
            backend=backend,
            schema_revision=revision,
            created_at=now.isoformat(),
            media_files=len(media),
        )
        partial = Path(work) / "archive.tar"
        # Readable by the desk's user only: the archive holds every customer's name, phone and
        # address, and the agents' password hashes (a umask of 022 would make it anyone's).
        partial.touch(mode=0o600)
        with tarfile.open(partial, "w") as tar:
            raw = json.dumps(asdict(manifest), indent=2).encode()
            _add_bytes(tar, MANIFEST, raw, now.timestamp())
            tar.add(dump, arcname=manifest.database_member, recursive=False)
            for path in media:
                tar.add(path, arcname=f"{MEDIA}/{path.relative_to(media_dir).as_posix()}")
        os.replace(partial, target)
    return manifest


def _media_files(media_dir: Path) -> list[Path]:
    """The stored files, in order; not the store's half-written ones (`.incoming-*`, renamed
    into place when complete: tickets/storage.py), which may be gone by the time they are read."""
    if not media_dir.is_dir():
        return []
    return sorted(
        p for p in media_dir.rglob("*") if p.is_file() and not p.name.startswith(".incoming-")
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(mtime)
    tar.addfile(info, io.BytesIO(data))


def sqlite_file(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupRefused(f"no SQLite file in AFTERSALES_DATABASE_URL ({database_url})")
    return Path(database)


def _sqlite_backup(database_url: str, dump: Path) -> str:
    """SQLite's online backup into `dump`: one consistent snapshot, writers not stopped (WAL:
    the copy reads while they write). Returns the copy's schema revision."""
    source_path = sqlite_file(database_url)
    if not source_path.is_file():
        raise BackupRefused(f"no database at {source_path}: nothing to back up")
    source = sqlite3.connect(source_path, timeout=30)
    copy = sqlite3.connect(dump)
    try:
        source.backup(copy)
        return _sqlite_revision(copy)
    finally:
        copy.close()
        source.close()


def _sqlite_revision(conn: sqlite3.Connection) -> str:
    try:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        rows = []
    if len(rows) != 1:
        raise BackupRefused("the database was never migrated (no schema revision): nothing to keep")
    return str(rows[0][0])


def _pg_revision(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError as exc:
        raise BackupRefused(
            f"cannot read the database's schema revision: {exc.__class__.__name__}: "
            + str(exc).splitlines()[0]
        ) from None
    finally:
        engine.dispose()
    if len(rows) != 1:
        raise BackupRefused("the database was never migrated (no schema revision): nothing to keep")
    return str(rows[0][0])


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupRefused(
            f"{name} is not on PATH: install PostgreSQL's client tools (Debian: apt install "
            f"postgresql-client, the server's major version or newer)"
        )
    return found


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """The libpq connection URI for `database_url` (no password in it: a command line is
    visible to every user of the machine) and the environment that carries the password."""
    url: URL = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run_pg(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 (the tool found on PATH, our own arguments)
            args,
            env=env,
            capture_output=True,
            text=True,
            timeout=PG_TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupRefused(f"{what} did not end within {PG_TOOL_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
        raise BackupRefused(f"{what} failed: {first}")


def _pg_dump(database_url: str, dump: Path) -> str:
    """pg_dump's custom format into `dump`; the schema revision read before and after must
    agree (a migration running meanwhile would make the dump's revision unknown)."""
    tool = _pg_tool("pg_dump")
    before = _pg_revision(database_url)
    uri, env = _libpq(database_url)
    _run_pg(
        [tool, "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}", uri],
        env,
        "pg_dump",
    )
    if _pg_revision(database_url) != before:
        raise BackupRefused("the schema changed during the backup (a migration ran): run it again")
    return before


# ---------------------------------------------------------------- restore


def read_manifest(archive: Path) -> Manifest:
    """The archive's manifest, checked to be one this build can restore."""
    if not archive.is_file():
        raise BackupRefused(f"no file {archive}")
    try:
        with tarfile.open(archive, "r") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST or member.size > MANIFEST_MAX_BYTES:
                raise BackupRefused(f"{archive} is not an aftersales backup (no manifest first)")
            handle = tar.extractfile(member)
            assert handle is not None
            raw: Any = json.loads(handle.read())
    except (tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError):
        raise BackupRefused(f"{archive} is not an aftersales backup (unreadable)") from None
    try:
        manifest = Manifest(
            format=int(raw["format"]),
            backend=str(raw["backend"]),
            schema_revision=str(raw["schema_revision"]),
            created_at=str(raw["created_at"]),
            media_files=int(raw["media_files"]),
        )
    except (KeyError, TypeError, ValueError):
        raise BackupRefused(f"{archive} has a manifest this build cannot read") from None
    if manifest.format != FORMAT:
        raise BackupRefused(
            f"{archive} is in backup format {manifest.format}; this build reads format {FORMAT}"
        )
    if manifest.schema_revision not in known_revisions():
        raise BackupRefused(
            f"the backup's schema ({manifest.schema_revision}) is newer than this build knows: "
            "restore it with the release that made it, or a newer one"
        )
    return manifest


def holds_data(database_url: str) -> bool:
    """Whether any table (but Alembic's own) has a row: a database only migrated is empty."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = sorted(set(inspect(conn).get_table_names()) - {"alembic_version"})
            for table in tables:
                quoted = conn.dialect.identifier_preparer.quote(table)
                if conn.execute(text(f"SELECT 1 FROM {quoted} LIMIT 1")).first():
                    return True
    except SQLAlchemyError as exc:
        raise BackupRefused(
            f"cannot read the target database: {exc.__class__.__name__}: "
            + str(exc).splitlines()[0]
        ) from None
    finally:
        engine.dispose()
    return False


def restore(*, database_url: str, media_dir: Path, archive: Path, force: bool) -> Manifest:
    """Put the archive's database in place of `database_url`'s and its files in `media_dir`
    (files already there are kept: the store is addressed by content)."""
    manifest = read_manifest(archive)
    backend = backend_of(database_url)
    if manifest.backend != backend:
        raise BackupRefused(
            f"the backup holds a {manifest.backend} database; AFTERSALES_DATABASE_URL is "
            f"{backend}: restore it into a {manifest.backend} database"
        )
    fresh_file = backend == "sqlite" and not sqlite_file(database_url).exists()
    if not fresh_file and not force and holds_data(database_url):
        raise BackupRefused(
            "the target database already holds data: restore into an empty database, or add "
            "--force to replace it"
        )
    with tempfile.TemporaryDirectory(
        prefix=".aftersales-restore-", dir=_scratch(database_url)
    ) as work:
        dump = Path(work) / "database"
        with _archive(archive) as tar:
            _extract_database(tar, manifest, dump)
        if backend == "sqlite":
            _sqlite_restore(database_url, dump)
        else:
            _pg_restore(database_url, dump)
    with _archive(archive) as tar:
        _extract_media(tar, media_dir)
    return manifest


def _scratch(database_url: str) -> Path | None:
    """Where to unpack the database: beside a SQLite file (the copy is moved into place from
    there, on one file system), else the system's temporary folder."""
    if backend_of(database_url) == "sqlite":
        folder = sqlite_file(database_url).resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return None


@contextmanager
def _archive(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(archive, "r") as tar:
            yield tar
    except tarfile.TarError as exc:
        raise BackupRefused(f"{archive} is damaged: {exc}") from None


def _extract_database(tar: tarfile.TarFile, manifest: Manifest, dump: Path) -> None:
    try:
        member = tar.getmember(manifest.database_member)
    except KeyError:
        raise BackupRefused(f"the backup has no {manifest.database_member}") from None
    handle: IO[bytes] | None = tar.extractfile(member)
    if handle is None:
        raise BackupRefused(f"the backup's {manifest.database_member} is not a file")
    with dump.open("wb") as out:
        shutil.copyfileobj(handle, out)


def _extract_media(tar: tarfile.TarFile, media_dir: Path) -> None:
    media_dir.mkdir(parents=True, exist_ok=True)
    prefix = MEDIA + "/"
    members = []
    for member in tar:
        if member.name.startswith(prefix) and member.isfile():
            member.name = member.name[len(prefix) :]
            members.append(member)
    # The "data" filter refuses absolute paths, "..", links out of the folder and devices.
    tar.extractall(media_dir, members=members, filter="data")


def _sqlite_restore(database_url: str, dump: Path) -> None:
    """The copy replaces the database file, with the old file's write-ahead log removed (it
    belongs to the old database). The caller holds the serve lock: no serve runs on it."""
    target = sqlite_file(database_url)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(dump, target)  # unpacked beside it (_scratch): one file system, one rename


def _pg_restore(database_url: str, dump: Path) -> None:
    """The database's tables dropped (it held no data, or the operator forced the restore: a
    table the dump lacks, from a newer schema, would stay and break the next migration), then
    pg_restore in one transaction."""
    tool = _pg_tool("pg_restore")
    _drop_tables(database_url)
    uri, env = _libpq(database_url)
    _run_pg(
        [
            tool,
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={uri}",
            str(dump),
        ],
        env,
        "pg_restore",
    )


def _drop_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            tables = sorted(inspect(conn).get_table_names())
            if tables:
                conn.execute(
                    text(f"DROP TABLE IF EXISTS {', '.join(quote(t) for t in tables)} CASCADE")
                )
    finally:
        engine.dispose()

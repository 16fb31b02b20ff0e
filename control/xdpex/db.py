"""Database engine, sessions and migrations for the control plane.

`make_engine` builds a SQLAlchemy engine for SQLite (WAL, busy timeout) or PostgreSQL (psycopg 3,
optionally confined to one schema through `search_path`, created on demand, so parallel test
runs and several gateways can share one server). `migrate` runs alembic up to head with the
scripts in control/xdpex/migrations, configured in code (no alembic.ini needed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def normalize_url(url: str) -> str:
    """postgresql:// URLs use psycopg 3 (the driver we install), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, schema: str = "") -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    if schema:
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"db_schema: {schema!r} is not a plain lower-case identifier")
        boot = create_engine(url, isolation_level="AUTOCOMMIT")
        with boot.connect() as c:
            c.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        boot.dispose()
        return create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-csearch_path={schema}"}
        )
    return create_engine(url, pool_pre_ping=True)


def drop_schema(url: str, schema: str) -> None:
    """Remove a PostgreSQL schema and everything in it (test clean-up)."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"db_schema: {schema!r} is not a plain lower-case identifier")
    eng = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` with alembic."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    s = factory()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()

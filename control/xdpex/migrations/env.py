"""alembic environment of the control-plane database: runs on the connection `xdpex.db.migrate`
hands over (config.attributes["connection"]), or on a URL from XDPEX_DATABASE_URL when alembic is
run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from xdpex.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


conn = context.config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    from xdpex.config import load_settings
    from xdpex.db import make_engine

    s = load_settings()
    engine = make_engine(s.effective_database_url, s.db_schema)
    with engine.begin() as c:
        _run(c)

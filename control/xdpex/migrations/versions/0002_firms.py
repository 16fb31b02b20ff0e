"""drop copy: firms, their sessions and who may read their drop copy (see xdpex/models.py).

Revision ID: 0002_firms
Revises: 0001
Create Date: 2026-12-02 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_firms"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firms",
        sa.Column("firm_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("firm_id", name=op.f("pk_firms")),
        sa.UniqueConstraint("name", name=op.f("uq_firms_name")),
    )
    op.create_table(
        "firm_sessions",
        sa.Column("session_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_firm_sessions")),
    )
    with op.batch_alter_table("firm_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_firm_sessions_firm_id"), ["firm_id"], unique=False)
    op.create_table(
        "firm_readers",
        sa.Column("firm_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token_name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("firm_id", "token_name", name=op.f("pk_firm_readers")),
    )


def downgrade() -> None:
    op.drop_table("firm_readers")
    with op.batch_alter_table("firm_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_firm_sessions_firm_id"))
    op.drop_table("firm_sessions")
    op.drop_table("firms")

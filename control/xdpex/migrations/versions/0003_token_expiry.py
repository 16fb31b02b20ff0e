"""API tokens: expiry, rotation and a per-token request rate (see xdpex/auth.py).

Revision ID: 0003_token_expiry
Revises: 0002_firms
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_token_expiry"
down_revision = "0002_firms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rotated_to", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("burst", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("burst")
        batch_op.drop_column("rate")
        batch_op.drop_column("rotated_to")
        batch_op.drop_column("expires_at")

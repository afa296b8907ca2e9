"""Record whether a top-k selection was greedy, in the provenance of runs and circuits.

`catalog discover --top-k K --greedy` grows a connected circuit from the logits (EAP-IG's greedy
top-n) instead of taking the K best edges anywhere, which can leave an empty circuit; provenance
must say which was done. A nullable boolean column, so existing rows read as not greedy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("runs", "circuits"):
        op.add_column(table, sa.Column("selection_greedy", sa.Boolean(), nullable=True))


def downgrade() -> None:
    for table in ("runs", "circuits"):
        op.drop_column(table, "selection_greedy")

"""Keep the attention patterns of a discovered circuit's heads beside the circuit.

Discovery records what each head of the circuit attends to on a few of the task's prompts, so
that `catalog show --attention` and the web view can show them without a model or torch. One
JSON document per circuit; it goes when the circuit is deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attention_patterns",
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["circuit_id"], ["circuits.id"], ondelete="CASCADE",
                                name=op.f("fk_attention_patterns_circuit_id_circuits")),
        sa.PrimaryKeyConstraint("circuit_id", name=op.f("pk_attention_patterns")),
    )


def downgrade() -> None:
    op.drop_table("attention_patterns")

"""Add analyses of stored circuits: measured head roles and interventions.

A circuit is immutable, but what is later measured about it (each head's role from attention,
direct logit attribution, copying and composition scores; the metric and accuracy before and
after an ablation, patch or scaling) belongs with it. Each measurement is one ``analyses`` row
(kind, dataset, parameters, result as JSON) deleted with its circuit; head roles add one
``head_roles`` row per head so that ``catalog show`` and queries can read a head's label
without parsing JSON.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("dataset_hash", sa.String(length=128), nullable=False),
        sa.Column("dataset_size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('roles', 'intervention')", name=op.f("ck_analyses_kind")),
        sa.ForeignKeyConstraint(["circuit_id"], ["circuits.id"], name=op.f("fk_analyses_circuit_id_circuits"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
    )
    op.create_index(op.f("ix_analyses_circuit_id"), "analyses", ["circuit_id"])
    op.create_table(
        "head_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], name=op.f("fk_head_roles_analysis_id_analyses"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_head_roles")),
    )
    op.create_index(op.f("ix_head_roles_analysis_id"), "head_roles", ["analysis_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_head_roles_analysis_id"), table_name="head_roles")
    op.drop_table("head_roles")
    op.drop_index(op.f("ix_analyses_circuit_id"), table_name="analyses")
    op.drop_table("analyses")

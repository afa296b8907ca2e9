"""Index nodes by component and circuits by (model, task) for the aggregate queries.

`find`, `reuse` and the all-pairs overlap look nodes up by component id across every circuit,
and "the newest circuit per task on a model" filters circuits by model and task. Without these
indexes each of those scans the whole nodes table (about a million rows for 1,000 circuits).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_nodes_node_id_circuit_id", "nodes", ["node_id", "circuit_id"])
    op.create_index("ix_circuits_model_id_task_id", "circuits", ["model_id", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_circuits_model_id_task_id", table_name="circuits")
    op.drop_index("ix_nodes_node_id_circuit_id", table_name="nodes")

"""Record who runs a discovery and identify imported circuits by content, so neither can lie.

Runs gain their owner (``host``, ``pid``) and a ``heartbeat_at`` the running process refreshes,
so a run whose process died without a word (SIGKILL, power loss) can be told apart from one
still working, and a fourth status, ``interrupted``, for a run stopped by a signal. Circuits
gain ``content_hash``, a canonical hash of what was imported (graph, task, model, source file),
unique so that concurrent or repeated loads of the same file store each circuit once. Circuits
stored before this revision have no hash (NULL never collides), so they are not deduplicated.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

_OLD_STATUSES = "'running', 'done', 'failed'"
_NEW_STATUSES = "'running', 'done', 'failed', 'interrupted'"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_status"), f"status IN ({_NEW_STATUSES})")
    # A nullable column and a unique index: no table rebuild on SQLite.
    op.add_column("circuits", sa.Column("content_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_circuits_content_hash"), "circuits", ["content_hash"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_circuits_content_hash"), table_name="circuits")
    with op.batch_alter_table("circuits") as batch:
        batch.drop_column("content_hash")
    # An interrupted run was a failed one before this revision.
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'interrupted'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_status"), f"status IN ({_OLD_STATUSES})")
        batch.drop_column("heartbeat_at")
        batch.drop_column("pid")
        batch.drop_column("host")

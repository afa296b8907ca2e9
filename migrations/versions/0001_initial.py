"""Create the catalog: models, tasks, runs, circuits, nodes, edges, annotations and tags.

Revision 0001 builds every table, so a new database needs nothing but ``upgrade head``.
Enumerations are strings with named check constraints (SQLite and PostgreSQL alike), and every
constraint is named so SQLite batch mode can alter tables in later revisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

_SOURCES = "'discovery', 'import', 'published'"
_ABLATIONS = "'counterfactual', 'mean', 'zero'"
_RULES = "'top-k', 'threshold', 'faithfulness', 'given'"


def _provenance(table: str) -> list[sa.SchemaItem]:
    """The provenance columns and checks that runs and circuits share."""
    return [
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_format", sa.String(length=100), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=100), nullable=True),
        sa.Column("method_params", sa.JSON(), nullable=False),
        sa.Column("dataset_hash", sa.String(length=128), nullable=True),
        sa.Column("dataset_size", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("metric", sa.String(length=200), nullable=True),
        sa.Column("ablation", sa.String(length=20), nullable=True),
        sa.Column("selection_rule", sa.String(length=20), nullable=True),
        sa.Column("selection_value", sa.Double(), nullable=True),
        sa.Column("selection_absolute", sa.Boolean(), nullable=True),
        sa.Column("library_versions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("citation", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.CheckConstraint(f"source IN ({_SOURCES})", name=op.f(f"ck_{table}_source")),
        sa.CheckConstraint(f"ablation IS NULL OR ablation IN ({_ABLATIONS})", name=op.f(f"ck_{table}_ablation")),
        sa.CheckConstraint(f"selection_rule IS NULL OR selection_rule IN ({_RULES})",
                           name=op.f(f"ck_{table}_selection_rule")),
    ]


def _child(table: str) -> list[sa.SchemaItem]:
    """Id and circuit reference of a table whose rows belong to one circuit."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["circuit_id"], ["circuits.id"], name=op.f(f"fk_{table}_circuit_id_circuits"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("n_heads", sa.Integer(), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=True),
        sa.Column("parallel_attn_mlp", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", "revision", name=op.f("uq_models_name_revision")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_provenance("runs"),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_runs_status")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_runs_model_id_models")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_runs_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "circuits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_nodes", sa.Integer(), nullable=False),
        sa.Column("n_edges", sa.Integer(), nullable=False),
        sa.Column("n_heads", sa.Integer(), nullable=False),
        sa.Column("n_mlps", sa.Integer(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("n_scored_edges", sa.Integer(), nullable=False),
        *_provenance("circuits"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_circuits_model_id_models")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_circuits_run_id_runs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_circuits_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuits")),
    )
    op.create_table(
        "nodes",
        *_child("nodes"),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=True),
        sa.Column("head", sa.Integer(), nullable=True),
        sa.Column("feature", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=True),
        sa.Column("dictionary", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("in_circuit", sa.Boolean(), nullable=False),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('input', 'attention', 'mlp', 'logits', 'feature', 'error')",
                           name=op.f("ck_nodes_kind")),
        sa.UniqueConstraint("circuit_id", "node_id", name=op.f("uq_nodes_circuit_id_node_id")),
    )
    op.create_table(
        "edges",
        *_child("edges"),
        sa.Column("src", sa.String(length=200), nullable=False),
        sa.Column("dst", sa.String(length=200), nullable=False),
        sa.Column("qkv", sa.String(length=1), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("in_circuit", sa.Boolean(), nullable=False),
        sa.CheckConstraint("qkv IS NULL OR qkv IN ('q', 'k', 'v')", name=op.f("ck_edges_qkv")),
    )
    op.create_index(op.f("ix_edges_circuit_id"), "edges", ["circuit_id"])
    op.create_table(
        "annotations",
        *_child("annotations"),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.CheckConstraint("kind IN ('role', 'label', 'group', 'citation', 'note')", name=op.f("ck_annotations_kind")),
    )
    op.create_index(op.f("ix_annotations_circuit_id"), "annotations", ["circuit_id"])
    op.create_table(
        "tags",
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["circuit_id"], ["circuits.id"], name=op.f("fk_tags_circuit_id_circuits"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("circuit_id", "position", name=op.f("pk_tags")),
    )
    op.create_index(op.f("ix_tags_tag"), "tags", ["tag"])


def downgrade() -> None:
    for table in ("tags", "annotations", "edges", "nodes", "circuits", "runs", "tasks", "models"):
        op.drop_table(table)

"""The catalog's tables as SQLAlchemy 2 typed models (private ``*Row`` classes).

Only Alembic builds these tables (``migrations/``); the models exist so the store can query them
and so a test can check that the migrations produce exactly this schema. Enumerations are stored
as their string values with a named check constraint, so SQLite and PostgreSQL behave the same.
Component ids (``a9.h6``, ``m3``, ``f3.1200@1[clt]``) are stored as strings: they are the join
key across circuits.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from catalog.analysis.records import AnalysisKind
from catalog.graph import AnnotationKind
from catalog.naming import QKV, NodeKind
from catalog.provenance import Ablation, SelectionRule, Source

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunStatus(str, Enum):
    """Life cycle of a discovery run."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); added by 0003


def _one_of(column: str, enum: type[Enum], name: str, nullable: bool = False) -> CheckConstraint:
    values = ", ".join(f"'{m.value}'" for m in enum)
    cond = f"{column} IN ({values})"
    if nullable:
        cond = f"{column} IS NULL OR {cond}"
    return CheckConstraint(cond, name=name)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {dict[str, Any]: JSON, float: Double, datetime: DateTime(timezone=True)}


class ModelRow(Base):
    """A model shape; ``revision`` is '' when unknown so (name, revision) can be unique."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    revision: Mapped[str] = mapped_column(String(200), default="")
    n_layers: Mapped[int] = mapped_column(Integer)
    n_heads: Mapped[int] = mapped_column(Integer)
    d_model: Mapped[int | None] = mapped_column(Integer)
    parallel_attn_mlp: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("name", "revision"),)


class TaskRow(Base):
    """A task name (``ioi``, ``colored-objects``, or whatever an import names)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class _ProvenanceColumns:
    """The provenance fields shared by runs and circuits (see `catalog.provenance.Provenance`)."""

    source: Mapped[str] = mapped_column(String(20))
    source_format: Mapped[str | None] = mapped_column(String(100))
    source_file: Mapped[str | None] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(100))
    method_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_hash: Mapped[str | None] = mapped_column(String(128))
    dataset_size: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str | None] = mapped_column(String(200))
    ablation: Mapped[str | None] = mapped_column(String(20))
    selection_rule: Mapped[str | None] = mapped_column(String(20))
    selection_value: Mapped[float | None] = mapped_column(Double)
    selection_absolute: Mapped[bool | None] = mapped_column(Boolean)
    selection_greedy: Mapped[bool | None] = mapped_column(Boolean)
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    citation: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)


def _provenance_checks() -> tuple[CheckConstraint, ...]:
    return (
        _one_of("source", Source, "source"),
        _one_of("ablation", Ablation, "ablation", nullable=True),
        _one_of("selection_rule", SelectionRule, "selection_rule", nullable=True),
    )


class RunRow(_ProvenanceColumns, Base):
    """A discovery job: its status, timings and, once done, the circuit it stored."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # Added by revision 0003: who runs it, and when that process last said it was alive.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (_one_of("status", RunStatus, "status"), *_provenance_checks())


class CircuitRow(_ProvenanceColumns, Base):
    """One stored circuit; the size columns are its summary, kept so listings need no joins."""

    __tablename__ = "circuits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    n_nodes: Mapped[int] = mapped_column(Integer)
    n_edges: Mapped[int] = mapped_column(Integer)
    n_heads: Mapped[int] = mapped_column(Integer)
    n_mlps: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_scored_edges: Mapped[int] = mapped_column(Integer)
    # Added by revision 0003: what was imported, hashed (see `catalog.store.identity`); NULL for
    # discovered circuits and deliberate duplicates, which never collide.
    content_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        *_provenance_checks(),
        # Added by revision 0002: "newest circuit per task on a model" and model/task filters.
        Index("ix_circuits_model_id_task_id", "model_id", "task_id"),
        # Added by revision 0003: one circuit per content (NULLs never collide).
        Index("ix_circuits_content_hash", "content_hash", unique=True),
    )


class NodeRow(Base):
    """A node of a circuit's graph. ``member`` is True when the node is in the circuit (flagged,
    or an endpoint of an in-circuit edge): the aggregate queries count members only."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    layer: Mapped[int | None] = mapped_column(Integer)
    head: Mapped[int | None] = mapped_column(Integer)
    feature: Mapped[int | None] = mapped_column(BigInteger)
    position: Mapped[int | None] = mapped_column(Integer)
    token: Mapped[int | None] = mapped_column(BigInteger)
    dictionary: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Double)
    in_circuit: Mapped[bool] = mapped_column(Boolean)
    member: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        UniqueConstraint("circuit_id", "node_id"),
        _one_of("kind", NodeKind, "kind"),
        # Added by revision 0002: the component-first index behind find, reuse and overlap.
        Index("ix_nodes_node_id_circuit_id", "node_id", "circuit_id"),
    )


class EdgeRow(Base):
    """An edge of a circuit's graph; ``qkv`` names the head input it feeds (NULL otherwise)."""

    __tablename__ = "edges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), index=True)
    src: Mapped[str] = mapped_column(String(200))
    dst: Mapped[str] = mapped_column(String(200))
    qkv: Mapped[str | None] = mapped_column(String(1))
    score: Mapped[float | None] = mapped_column(Double)
    in_circuit: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (_one_of("qkv", QKV, "qkv", nullable=True),)


class AnnotationRow(Base):
    """A role, label, group (with members), citation or note attached to a circuit."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    node_id: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text)
    members: Mapped[list[str]] = mapped_column(JSON)

    __table_args__ = (_one_of("kind", AnnotationKind, "kind"),)


class TagRow(Base):
    """A circuit's tags, in the order they were given."""

    __tablename__ = "tags"

    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), index=True)


class AttentionRow(Base):
    """The attention patterns of a discovered circuit's heads on a few task prompts (one JSON
    document per circuit: `catalog.attention.AttentionPatterns`)."""

    __tablename__ = "attention_patterns"

    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SweepStatus(str, Enum):
    """Life cycle of a sweep and of each of its cells."""

    PENDING = "pending"  # a cell not started yet
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class SweepRow(Base):
    """A grid of discoveries (`catalog sweep`): its specification, state and cost."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    executor: Mapped[str] = mapped_column(String(40))
    workers: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    wall_seconds: Mapped[float | None] = mapped_column(Double)
    cost: Mapped[dict[str, Any]] = mapped_column(JSON)  # per worker: cells, cpu seconds, peak RSS

    __table_args__ = (_one_of("status", SweepStatus, "status"),)


class SweepCellRow(Base):
    """One cell of a sweep: a (task, method, model, seed) discovery and how it ended."""

    __tablename__ = "sweep_cells"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(400))
    task: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(400))
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    worker: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    circuit_id: Mapped[int | None] = mapped_column(ForeignKey("circuits.id", ondelete="SET NULL"))
    seconds: Mapped[float | None] = mapped_column(Double)
    faithfulness: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("sweep_id", "key"), _one_of("status", SweepStatus, "status"))


class AnalysisRow(Base):
    """A measurement made on a stored circuit (head roles, an intervention): its dataset,
    parameters and result. Added by revision 0006."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(200))
    dataset_hash: Mapped[str] = mapped_column(String(128))
    dataset_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (_one_of("kind", AnalysisKind, "kind"),)


class HeadRoleRow(Base):
    """One head's measured role label and the numbers it was assigned from (revision 0006)."""

    __tablename__ = "head_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)

"""Aggregate queries over many circuits, run as SQL against the nodes table.

None of these loads a graph: they read the ``member`` rows of the nodes table (nodes in the
circuit, not every scored node), grouped and joined in the database. Circuits tagged ``part``
(the per-prompt graphs stored beside a feature circuit) are pieces of another circuit, not
circuits of their own: counts, the newest circuit per task and membership leave them out
(`find` still lists them, and membership of named circuits returns what was named).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from catalog.errors import NotFoundError
from catalog.graph import AnnotationKind
from catalog.naming import NodeKind, format_node, parse_component, parse_node
from catalog.provenance import PART_TAG
from catalog.store.records import ComponentCount, FindHit, Membership, TaskOverlap
from catalog.store.schema import AnnotationRow, CircuitRow, ModelRow, NodeRow, TagRow, TaskRow


def _whole() -> Any:
    """Circuits that are not a part of another (not tagged ``part``)."""
    return CircuitRow.id.not_in(select(TagRow.circuit_id).where(TagRow.tag == PART_TAG))


def _member_filter(names: set[str] | None, kinds: Sequence[str] | None, whole: bool = True) -> list[Any]:
    conds: list[Any] = [NodeRow.member.is_(True)] + ([_whole()] if whole else [])
    if names is not None:
        conds.append(ModelRow.name.in_(names))
    if kinds is not None:
        conds.append(NodeRow.kind.in_(list(kinds)))
    return conds


def component_counts(s: Session, names: set[str] | None, kinds: Sequence[str] | None) -> list[ComponentCount]:
    """Per (model, component): distinct tasks and circuits containing it; most reused first."""
    q = (select(ModelRow.name, NodeRow.node_id, NodeRow.kind, TaskRow.name,
                func.count(func.distinct(NodeRow.circuit_id)))
         .select_from(NodeRow)
         .join(CircuitRow, CircuitRow.id == NodeRow.circuit_id)
         .join(ModelRow, ModelRow.id == CircuitRow.model_id)
         .join(TaskRow, TaskRow.id == CircuitRow.task_id)
         .where(*_member_filter(names, kinds))
         .group_by(ModelRow.name, NodeRow.node_id, NodeRow.kind, TaskRow.name))
    acc: dict[tuple[str, str], tuple[str, list[str], list[int]]] = {}
    for model, node_id, kind, task, n in s.connection().execute(q).all():
        entry = acc.setdefault((model, node_id), (kind, [], []))
        entry[1].append(task)
        entry[2].append(n)
    out = [ComponentCount(model=model, component=node_id, kind=kind, n_tasks=len(tasks),
                          n_circuits=sum(counts), tasks=tuple(sorted(tasks)))
           for (model, node_id), (kind, tasks, counts) in acc.items()]
    out.sort(key=lambda c: (-c.n_tasks, -c.n_circuits, c.model, c.component))
    return out


def newest_per_task(s: Session, names: set[str]) -> dict[str, int]:
    """Task name -> id of the newest (most recently added) circuit for it on the model."""
    q = (select(TaskRow.name, func.max(CircuitRow.id))
         .select_from(CircuitRow)
         .join(ModelRow, ModelRow.id == CircuitRow.model_id)
         .join(TaskRow, TaskRow.id == CircuitRow.task_id)
         .where(ModelRow.name.in_(names), _whole())
         .group_by(TaskRow.name))
    return {task: int(cid) for task, cid in s.connection().execute(q)}


def task_overlap(s: Session, model: str, names: set[str], kinds: Sequence[str] | None) -> TaskOverlap:
    """Shared member counts between the newest circuits of every pair of tasks (a self-join)."""
    newest = newest_per_task(s, names)
    if not newest:
        known = sorted(s.scalars(select(ModelRow.name).where(ModelRow.id.in_(select(CircuitRow.model_id)))))
        raise NotFoundError(f"No circuits on model '{model}'. Models with circuits: {', '.join(known) or 'none'}.")
    ids = list(newest.values())
    a, b = NodeRow.__table__.alias("a"), NodeRow.__table__.alias("b")
    conds = [a.c.circuit_id.in_(ids), b.c.circuit_id.in_(ids), a.c.member.is_(True), b.c.member.is_(True)]
    if kinds is not None:
        conds.append(a.c.kind.in_(list(kinds)))
    q = (select(a.c.circuit_id, b.c.circuit_id, func.count())
         .select_from(a.join(b, a.c.node_id == b.c.node_id))
         .where(and_(*conds))
         .group_by(a.c.circuit_id, b.c.circuit_id))
    task_of = {cid: task for task, cid in newest.items()}
    tasks = tuple(sorted(newest))
    shared = {t: {u: 0 for u in tasks} for t in tasks}
    for ca, cb, n in s.connection().execute(q):
        shared[task_of[ca]][task_of[cb]] = int(n)
    model_name = s.scalar(select(ModelRow.name).join(CircuitRow, CircuitRow.model_id == ModelRow.id)
                          .where(CircuitRow.id == ids[0]))
    return TaskOverlap(model=model_name or model, tasks=tasks, circuits=dict(sorted(newest.items())),
                       sizes={t: shared[t][t] for t in tasks}, shared=shared)


def find(s: Session, component: str, names: set[str] | None) -> list[FindHit]:
    """Circuits containing `component` as a member; an id without position or role matches the
    component at any position or role (``a1.h0`` finds ``a1.h0@END``), one with a role only that role."""
    c = parse_node(parse_component(component))
    conds: list[Any] = [NodeRow.member.is_(True), NodeRow.kind == c.kind.value]
    for column, value in ((NodeRow.layer, c.layer), (NodeRow.head, c.head), (NodeRow.feature, c.feature),
                          (NodeRow.position, c.position), (NodeRow.dictionary, c.dictionary)):
        if value is not None:
            conds.append(column == value)
    if c.kind is NodeKind.LOGITS and c.token is not None:
        conds.append(NodeRow.token == c.token)
    if c.role is not None:  # roles live in the id only (no column): match the id exactly
        conds.append(NodeRow.node_id == format_node(c))
    if names is not None:
        conds.append(ModelRow.name.in_(names))
    q = (select(NodeRow.circuit_id, CircuitRow.name, ModelRow.name, TaskRow.name, CircuitRow.method,
                NodeRow.node_id, NodeRow.score)
         .select_from(NodeRow)
         .join(CircuitRow, CircuitRow.id == NodeRow.circuit_id)
         .join(ModelRow, ModelRow.id == CircuitRow.model_id)
         .join(TaskRow, TaskRow.id == CircuitRow.task_id)
         .where(*conds)
         .order_by(NodeRow.circuit_id, NodeRow.node_id))
    rows = s.connection().execute(q).all()
    notes: dict[tuple[int, str, str], list[str]] = {}
    if rows:
        aq = (select(AnnotationRow.circuit_id, AnnotationRow.node_id, AnnotationRow.kind, AnnotationRow.value)
              .where(AnnotationRow.circuit_id.in_({r[0] for r in rows}),
                     AnnotationRow.node_id.in_({r[5] for r in rows}),
                     AnnotationRow.kind.in_([AnnotationKind.ROLE.value, AnnotationKind.LABEL.value]))
              .order_by(AnnotationRow.value))
        for cid, node_id, kind, value in s.connection().execute(aq):
            notes.setdefault((cid, node_id or "", kind), []).append(value)
    return [
        FindHit(circuit_id=cid, circuit_name=name, model=model, task=task, method=method, node_id=node_id,
                score=score, role="; ".join(notes[(cid, node_id, "role")]) if (cid, node_id, "role") in notes else None,
                label="; ".join(notes[(cid, node_id, "label")]) if (cid, node_id, "label") in notes else None)
        for cid, name, model, task, method, node_id, score in rows
    ]


def membership(s: Session, model: str | None, names: set[str] | None, kinds: Sequence[str] | None,
               ids: list[int] | None) -> Membership:
    """Member component ids of every matching circuit, in one query."""
    q = (select(NodeRow.circuit_id, NodeRow.node_id)
         .select_from(NodeRow)
         .join(CircuitRow, CircuitRow.id == NodeRow.circuit_id)
         .join(ModelRow, ModelRow.id == CircuitRow.model_id)
         .where(*_member_filter(names, kinds, whole=ids is None)))
    tq = (select(CircuitRow.id, TaskRow.name).join(TaskRow, TaskRow.id == CircuitRow.task_id)
          .join(ModelRow, ModelRow.id == CircuitRow.model_id))
    if names is not None:
        tq = tq.where(ModelRow.name.in_(names))
    if ids is not None:
        q = q.where(NodeRow.circuit_id.in_(ids))
        tq = tq.where(CircuitRow.id.in_(ids))
    else:
        tq = tq.where(_whole())
    tasks = {int(cid): task for cid, task in s.connection().execute(tq.order_by(CircuitRow.id))}
    sets: dict[int, set[str]] = {cid: set() for cid in tasks}
    for cid, node_id in s.connection().execute(q).all():
        sets[cid].add(node_id)
    return Membership(model=model, circuits={cid: frozenset(v) for cid, v in sets.items()}, tasks=tasks)

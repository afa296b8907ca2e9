"""Reading and writing the analyses of a circuit (head roles, interventions) as table rows.

`Catalog` calls these inside its own session; they never open one. Results are stored as JSON
(checked to be finite numbers) and read back into the same pydantic records, so
``get(add(report)) == report`` apart from the id and time the store assigns.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from catalog.analysis.records import AnalysisKind, HeadRole, InterventionResult, RoleReport
from catalog.store.convert import json_value, utc
from catalog.store.schema import AnalysisRow, HeadRoleRow
from catalog.store.writes import table_of


def _add(s: Session, circuit_id: int, kind: AnalysisKind, record: Any, params: dict[str, Any],
         result: dict[str, Any]) -> int:
    ds = record.dataset
    values = {
        "circuit_id": circuit_id, "kind": kind.value, "task": ds.task, "dataset_hash": ds.dataset_hash,
        "dataset_size": ds.n, "seed": ds.seed, "params": json_value(params, "analysis parameters"),
        "result": json_value(result, "analysis result"), "created_at": datetime.now(timezone.utc),
    }
    table = table_of(AnalysisRow)
    return int(s.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())


def add_roles(s: Session, circuit_id: int, report: RoleReport) -> int:
    """Store a role report (one analyses row, one head_roles row per head); its id."""
    body = report.model_dump(mode="json", exclude={"heads", "id", "created_at", "circuit_id"})
    aid = _add(s, circuit_id, AnalysisKind.ROLES, report, {"dataset": body.pop("dataset")}, body)
    rows = [{"analysis_id": aid, "node_id": h.node, "label": h.label,
             "evidence": json_value(h.evidence.model_dump(mode="json"), "head evidence")} for h in report.heads]
    if rows:
        s.execute(insert(table_of(HeadRoleRow)), rows)
    return aid


def add_intervention(s: Session, circuit_id: int, result: InterventionResult) -> int:
    """Store an intervention's parameters and outcome; its id."""
    body = result.model_dump(mode="json", exclude={"id", "created_at", "circuit_id"})
    params = {k: body.pop(k) for k in ("dataset", "ablation", "ablate", "patch", "patch_from", "scale")}
    return _add(s, circuit_id, AnalysisKind.INTERVENTION, result, params, body)


def latest_roles(s: Session, circuit_id: int) -> RoleReport | None:
    """The newest role report of a circuit, or None when its roles were never measured."""
    row = s.execute(select(AnalysisRow).where(AnalysisRow.circuit_id == circuit_id,
                                              AnalysisRow.kind == AnalysisKind.ROLES.value)
                    .order_by(AnalysisRow.id.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return None
    heads = s.execute(select(HeadRoleRow.node_id, HeadRoleRow.label, HeadRoleRow.evidence)
                      .where(HeadRoleRow.analysis_id == row.id).order_by(HeadRoleRow.id)).all()
    return RoleReport(
        circuit_id=circuit_id, dataset=row.params["dataset"], id=row.id, created_at=utc(row.created_at),
        heads=tuple(HeadRole(node=h.node_id, label=h.label, evidence=h.evidence) for h in heads),
        **row.result,
    )


def interventions(s: Session, circuit_id: int) -> list[InterventionResult]:
    """Every intervention stored with a circuit, oldest first."""
    rows = s.execute(select(AnalysisRow).where(AnalysisRow.circuit_id == circuit_id,
                                               AnalysisRow.kind == AnalysisKind.INTERVENTION.value)
                     .order_by(AnalysisRow.id)).scalars().all()
    return [InterventionResult(circuit_id=circuit_id, id=r.id, created_at=utc(r.created_at), **r.params, **r.result)
            for r in rows]


def delete_all(s: Session, circuit_id: int) -> None:
    """Delete a circuit's analyses and their head rows (explicitly: no reliance on cascades)."""
    ids = select(AnalysisRow.id).where(AnalysisRow.circuit_id == circuit_id)
    s.execute(delete(HeadRoleRow).where(HeadRoleRow.analysis_id.in_(ids)))
    s.execute(delete(AnalysisRow).where(AnalysisRow.circuit_id == circuit_id))

"""Sweeps in the store: create one with its cells, move each cell through its states, read back.

Each cell changes state in its own short transaction, from whichever process runs it (a pool
worker, a Ray task or a Slurm job), so a crash loses at most that cell's progress. A cell is
claimed (``pending``/``failed``/``interrupted`` -> ``running``) atomically: two processes
resuming the same sweep never run the same cell twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, insert, select, update

from catalog.errors import InvalidInputError, NotFoundError
from catalog.store.schema import SweepCellRow, SweepRow, SweepStatus

if TYPE_CHECKING:
    from catalog.store.engine import Connector

#: States a cell may be (re)started from.
RESTARTABLE = (SweepStatus.PENDING.value, SweepStatus.FAILED.value, SweepStatus.INTERRUPTED.value)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CellRecord(BaseModel):
    """One cell of a sweep: what it ran, where, how it ended, and what it stored."""

    model_config = ConfigDict(frozen=True)

    key: str
    task: str
    method: str
    model: str
    seed: int
    status: str
    worker: str | None
    attempts: int
    run_id: int | None
    circuit_id: int | None
    seconds: float | None
    faithfulness: float | None
    error: str | None


class SweepRecord(BaseModel):
    """A stored sweep: its specification, executor, state, cost and cells (in grid order)."""

    model_config = ConfigDict(frozen=True)

    id: int
    spec: dict[str, Any]
    executor: str
    workers: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    wall_seconds: float | None
    cost: dict[str, Any]
    cells: tuple[CellRecord, ...]

    def counts(self) -> dict[str, int]:
        """Cells per status, every status listed."""
        return {s.value: sum(c.status == s.value for c in self.cells) for s in SweepStatus}


def _sweep_id(value: Any) -> int:
    try:
        out = int(str(value).strip().lstrip("#"))
    except ValueError:
        out = -1
    if not 0 < out < 2**63:
        raise InvalidInputError(f"'{value}' is not a sweep id. Run `catalog sweep --list` to see them.")
    return out


class SweepStore:
    """The sweep tables of one catalog (`Catalog.sweeps`)."""

    def __init__(self, db: Connector) -> None:
        self._db = db

    def create(self, spec: Mapping[str, Any], cells: Iterable[Mapping[str, Any]], executor: str,
               workers: int) -> int:
        """Store a new sweep and its cells (all ``pending``) in one transaction; its id.

        Each cell mapping has ``key``, ``task``, ``method``, ``model`` and ``seed``."""
        rows = [dict(c) for c in cells]
        if not rows:
            raise InvalidInputError("A sweep needs at least one cell: give --task (and --method, --model, --seed).")
        with self._db.session_scope(write=True) as s:
            sid = int(s.execute(insert(SweepRow).values(
                spec=dict(spec), executor=executor, workers=workers, status=SweepStatus.RUNNING.value,
                started_at=_now(), cost={}).returning(SweepRow.id)).scalar_one())
            s.execute(insert(SweepCellRow), [{**r, "sweep_id": sid, "status": SweepStatus.PENDING.value,
                                               "attempts": 0} for r in rows])
            return sid

    def get(self, sweep_id: int | str) -> SweepRecord:
        """A sweep with its cells (NotFoundError for an unknown id)."""
        sid = _sweep_id(sweep_id)
        with self._db.session_scope() as s:
            row = s.get(SweepRow, sid)
            if row is None:
                raise NotFoundError(f"No sweep #{sid}. Run `catalog sweep --list` to see the sweeps.")
            cells = s.scalars(select(SweepCellRow).where(SweepCellRow.sweep_id == sid)
                              .order_by(SweepCellRow.id)).all()
            return SweepRecord(
                id=row.id, spec=row.spec, executor=row.executor, workers=row.workers, status=row.status,
                started_at=row.started_at, finished_at=row.finished_at, wall_seconds=row.wall_seconds,
                cost=row.cost or {},
                cells=tuple(CellRecord(key=c.key, task=c.task, method=c.method, model=c.model, seed=c.seed,
                                       status=c.status, worker=c.worker, attempts=c.attempts, run_id=c.run_id,
                                       circuit_id=c.circuit_id, seconds=c.seconds, faithfulness=c.faithfulness,
                                       error=c.error) for c in cells))

    def all(self) -> list[SweepRecord]:
        """Every sweep, oldest first."""
        with self._db.session_scope() as s:
            ids = list(s.scalars(select(SweepRow.id).order_by(SweepRow.id)))
        return [self.get(i) for i in ids]

    def reopen(self, sweep_id: int | str, executor: str, workers: int) -> SweepRecord:
        """Mark a sweep running again (for ``--resume``); cells keep their states."""
        sid = _sweep_id(sweep_id)
        self.get(sid)
        with self._db.session_scope(write=True) as s:
            s.execute(update(SweepRow).where(SweepRow.id == sid).values(
                status=SweepStatus.RUNNING.value, executor=executor, workers=workers, finished_at=None))
        return self.get(sid)

    def claim(self, sweep_id: int, key: str, worker: str) -> bool:
        """Mark a cell ``running`` on `worker` if it may start (pending, failed or interrupted);
        False when it is already running or done elsewhere."""
        with self._db.session_scope(write=True) as s:
            result = s.execute(update(SweepCellRow)
                               .where(SweepCellRow.sweep_id == sweep_id, SweepCellRow.key == key,
                                      SweepCellRow.status.in_(RESTARTABLE))
                               .values(status=SweepStatus.RUNNING.value, worker=worker, error=None,
                                       attempts=SweepCellRow.attempts + 1))
            return bool(getattr(result, "rowcount", 0))

    def finish(self, sweep_id: int, key: str, *, run_id: int | None, circuit_id: int | None,
               seconds: float, faithfulness: float | None) -> None:
        """A cell stored its circuit."""
        self._set(sweep_id, key, status=SweepStatus.DONE.value, run_id=run_id, circuit_id=circuit_id,
                  seconds=seconds, faithfulness=faithfulness, error=None)

    def fail(self, sweep_id: int, key: str, error: str, *, interrupted: bool = False,
             run_id: int | None = None, seconds: float | None = None) -> None:
        """A cell ended without a circuit: failed, or interrupted (Ctrl-C, a lost worker)."""
        status = SweepStatus.INTERRUPTED if interrupted else SweepStatus.FAILED
        self._set(sweep_id, key, status=status.value, error=error[:4000], run_id=run_id, seconds=seconds)

    def _set(self, sweep_id: int, key: str, **values: Any) -> None:
        with self._db.session_scope(write=True) as s:
            s.execute(update(SweepCellRow).where(SweepCellRow.sweep_id == sweep_id, SweepCellRow.key == key)
                      .values(**values))

    def close(self, sweep_id: int, *, interrupted: bool, wall_seconds: float, cost: Mapping[str, Any]) -> SweepRecord:
        """End a sweep: cells still running or pending become ``interrupted`` (their worker is gone
        or was never reached); the sweep is done when every cell is, else failed or interrupted."""
        with self._db.session_scope(write=True) as s:
            s.execute(update(SweepCellRow)
                      .where(SweepCellRow.sweep_id == sweep_id,
                             SweepCellRow.status.in_((SweepStatus.RUNNING.value, SweepStatus.PENDING.value)))
                      .values(status=SweepStatus.INTERRUPTED.value,
                              error=func.coalesce(SweepCellRow.error, "the sweep ended before this cell finished")))
            left = s.scalar(select(func.count()).where(SweepCellRow.sweep_id == sweep_id,
                                                       SweepCellRow.status != SweepStatus.DONE.value))
            status = (SweepStatus.DONE if not left else
                      SweepStatus.INTERRUPTED if interrupted else SweepStatus.FAILED)
            s.execute(update(SweepRow).where(SweepRow.id == sweep_id).values(
                status=status.value, finished_at=_now(), wall_seconds=round(wall_seconds, 3), cost=dict(cost)))
        return self.get(sweep_id)

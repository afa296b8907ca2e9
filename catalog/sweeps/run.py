"""Run a sweep: store its grid, hand the cells to an executor, record each cell as it ends.

`run_cell` is what a worker runs: it opens the shared catalog itself, claims its cell (so no cell
ever runs twice), runs one ordinary discovery (`catalog.jobs.discover`) and records how it ended.
It never raises: a failing cell is recorded and the other cells go on. Models are loaded once
per worker process and kept for its later cells; the executor sets each worker's CPU threads
(its share of the machine) before the cell runs, and the outcome records the count used.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from catalog.errors import InvalidInputError
from catalog.sweeps.executors import Executor, get_executor
from catalog.sweeps.grid import DEFAULT_MODEL, Cell, SweepSpec

_LOADED: dict[tuple[str, str | None, str], Any] = {}  # per worker process: models already loaded


class CellJob(BaseModel):
    """Everything a worker needs for one cell (plain data: it crosses process boundaries)."""

    model_config = ConfigDict(frozen=True)

    db: str
    sweep_id: int
    cell: Cell
    spec: SweepSpec


class CellOutcome(BaseModel):
    """How a cell ended, and what its worker process had used so far."""

    model_config = ConfigDict(frozen=True)

    key: str
    status: str  # done, failed, interrupted, skipped (already claimed or finished elsewhere)
    seconds: float
    faithfulness: float | None = None
    error: str | None = None
    worker: str
    worker_cpu_seconds: float
    worker_peak_rss_mb: float
    worker_threads: int | None = None  # torch's CPU threads in the worker (None: torch never loaded)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of this process so far."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return time.process_time(), peak


def _threads() -> int | None:
    """torch's CPU thread count in this process, without loading torch for it."""
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def _model(cell: Cell, spec: SweepSpec) -> Any:
    key = (cell.model, spec.device, spec.dtype)
    if key not in _LOADED:
        from catalog.models import load_model

        _LOADED[key] = load_model(None if cell.model == DEFAULT_MODEL else cell.model,
                                  device=spec.device, dtype=spec.dtype)
    return _LOADED[key]


def run_cell(job: CellJob) -> CellOutcome:
    """Run one cell in this process and record it in the catalog (see the module docstring)."""
    from catalog import jobs
    from catalog.store import Catalog

    started = time.perf_counter()
    worker = _worker_name()

    def outcome(status: str, faithfulness: float | None = None, error: str | None = None) -> CellOutcome:
        cpu, peak = _usage()
        return CellOutcome(key=job.cell.key, status=status, seconds=round(time.perf_counter() - started, 3),
                           faithfulness=faithfulness, error=error, worker=worker,
                           worker_cpu_seconds=round(cpu, 3), worker_peak_rss_mb=round(peak, 1),
                           worker_threads=_threads())

    cat = Catalog.open(job.db)
    try:
        if not cat.sweeps.claim(job.sweep_id, job.cell.key, worker):
            return outcome("skipped")
        cell, spec = job.cell, job.spec
        try:
            circuit = jobs.discover(cat, cell.task, model=_model(cell, spec), method=cell.method,
                                    ablation=spec.ablation, selection=spec.selection, n=spec.n, seed=cell.seed,
                                    batch_size=spec.batch_size, progress=False, params=dict(spec.params),
                                    tags=(f"sweep-{job.sweep_id}",))
        except BaseException as e:  # Ctrl-C in a worker too: record it, then let the worker go
            interrupted = isinstance(e, KeyboardInterrupt)
            message = "interrupted" if interrupted else " ".join(f"{type(e).__name__}: {e}".split())
            cat.sweeps.fail(job.sweep_id, cell.key, message, interrupted=interrupted,
                            seconds=round(time.perf_counter() - started, 3))
            if interrupted:
                raise
            return outcome("failed", error=message)
        faith = circuit.metrics.get("faithfulness")
        cat.sweeps.finish(job.sweep_id, cell.key, run_id=circuit.run_id, circuit_id=circuit.id,
                          seconds=round(time.perf_counter() - started, 3), faithfulness=faith)
        return outcome("done", faithfulness=faith)
    finally:
        cat.close()


class SweepResult(BaseModel):
    """What `sweep` did: the stored sweep (cells with status, time, faithfulness) and its cost."""

    model_config = ConfigDict(frozen=True)

    sweep: Any  # catalog.store.sweeps.SweepRecord (typed loosely: the store is imported lazily)
    interrupted: bool


Progress = Callable[[CellOutcome | None, dict[str, int]], None]


def sweep(cat: Any, spec: SweepSpec | None = None, executor: str = "pool", workers: int = 2,
          resume: int | str | None = None, address: str | None = None,
          progress: Progress | None = None, notify: Callable[[str], None] | None = None) -> SweepResult:
    """Run a new sweep of `spec`, or resume sweep `resume` (its unfinished cells only), on
    `executor` ("pool", "ray", "slurm") with `workers` workers; returns the stored sweep.

    Ray and Slurm run workers that may sit on other machines: they need a PostgreSQL catalog.
    Ctrl-C cancels what has not started, marks unfinished cells interrupted, and re-raises.
    """
    if workers < 1 or workers > 1024:
        raise InvalidInputError(f"--workers must be between 1 and 1024 (got {workers}).")
    runner: Executor = get_executor(executor)(workers=workers, address=address)
    if runner.remote and cat.backend == "sqlite":
        raise InvalidInputError(
            f"The {runner.name} executor runs workers that may be on other machines, and SQLite is not "
            "safe across machines: use a PostgreSQL catalog (--db postgresql://user@host/dbname), or "
            "--executor pool on this machine.")
    if resume is not None:
        if spec is not None:
            raise InvalidInputError("--resume takes the sweep's own grid: give no --task, --method, --model or --seed with it.")
        record = cat.sweeps.reopen(resume, runner.name, workers)
        spec = SweepSpec.parse(record.spec)
        todo = [c for c in spec.cells() if c.key in {x.key for x in record.cells if x.status != "done"}]
        sid = record.id
    else:
        if spec is None:
            raise InvalidInputError("Name what to sweep: --task (and --method, --model, --seed), or --file.")
        spec.check()
        todo = spec.cells()
        sid = cat.sweeps.create(spec.model_dump(mode="json"), [{**c.model_dump(), "key": c.key} for c in todo],
                                runner.name, workers)
    counts = {"done": 0, "failed": 0, "running": min(workers, len(todo)), "left": len(todo)}
    cost: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    interrupted = False
    if progress is not None:
        progress(None, dict(counts))
    try:
        for out in runner.run(run_cell, [CellJob(db=cat.connection_url(), sweep_id=sid, cell=c, spec=spec) for c in todo]):
            ok = isinstance(out, CellOutcome) and out.status in ("done", "skipped")
            if isinstance(out, CellOutcome):
                w = cost.setdefault(out.worker, {"cells": 0, "cpu_seconds": 0.0, "peak_rss_mb": 0.0})
                w["cells"] += 1
                w["cpu_seconds"] = max(w["cpu_seconds"], out.worker_cpu_seconds)
                w["peak_rss_mb"] = max(w["peak_rss_mb"], out.worker_peak_rss_mb)
                if out.worker_threads is not None:
                    w["threads"] = out.worker_threads
            # anything else: the executor lost the worker; the cell is recorded when the sweep closes
            counts["done" if ok else "failed"] += 1
            counts["left"] -= 1
            counts["running"] = min(workers, counts["left"])
            if progress is not None:
                progress(out if isinstance(out, CellOutcome) else None, dict(counts))
    except KeyboardInterrupt:
        interrupted = True
        runner.cancel()
        if notify is not None:
            notify(f"sweep #{sid} interrupted: unfinished cells are marked interrupted; "
                   f"run `catalog sweep --resume {sid}` to finish it.")
        raise
    finally:
        record = cat.sweeps.close(sid, interrupted=interrupted, wall_seconds=time.perf_counter() - started,
                                  cost={"workers": cost, "executor": runner.name,
                                        "threads_per_worker": runner.threads})
    return SweepResult(sweep=record, interrupted=interrupted)

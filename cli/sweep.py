"""`catalog sweep` and `catalog stability`: many discoveries in one command, and how stable their
circuits are across seeds and models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog.errors import CatalogError
from cli._common import JsonOpt, console, err_console, fmt_score, open_catalog, print_json, table

if TYPE_CHECKING:
    from catalog.queries import Stability
    from catalog.store.sweeps import SweepRecord


class SweepIncompleteError(CatalogError):
    """A sweep ended with cells that failed or were interrupted."""


def sweep(
    ctx: typer.Context,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", metavar="TASK", help="Task (repeatable).")] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", metavar="METHOD", help="Discovery method (repeatable; default eap-ig).")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="Model (repeatable; default: the embedded model).")] = None,
    seed: Annotated[list[int] | None, typer.Option(
        "--seed", metavar="SEED", help="Discovery seed: samples the prompts (repeatable; default 0).")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", metavar="SWEEP.toml", help="The grid and options in a TOML or YAML file "
                                                 "(keys: tasks, methods, models, seeds, n, ...).")] = None,
    n: Annotated[int | None, typer.Option("--n", metavar="N", help="Examples per task (default 128).")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", metavar="NAME", help="pool (processes on this machine), ray or slurm.")] = "pool",
    workers: Annotated[int, typer.Option("--workers", "-w", metavar="N", help="Workers running cells at once.")] = 2,
    address: Annotated[str | None, typer.Option(
        "--address", metavar="HOST:PORT", help="Ray cluster to use (default: start a local one).")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="ID", help="Finish sweep ID: run only its cells that did not finish.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the stored sweeps instead.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each cell as it ends.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Run a grid of discoveries (task x method x model x seed) on a process pool, Ray or Slurm
    into this catalog; resumable, and one failing cell never stops the others."""
    from catalog.sweeps import SweepSpec
    from catalog.sweeps import sweep as run

    cat = open_catalog(ctx, create=not list_)
    if list_:
        sweeps = cat.sweeps.all()
        if json_:
            print_json(sweeps)
        else:
            _render_sweeps(sweeps)
        return
    spec = None
    if file is not None:
        spec = SweepSpec.from_file(file)
    elif task or method or model or seed or n:
        spec = SweepSpec.parse({"tasks": task or [], **({"methods": method} if method else {}),
                                **({"models": model} if model else {}), **({"seeds": seed} if seed else {}),
                                **({"n": n} if n else {})}, where="catalog sweep")
    with _bar(not json_, verbose) as progress:
        result = run(cat, spec, executor=executor, workers=workers, resume=resume, address=address,
                     progress=progress, notify=lambda m: err_console.print(m, markup=False))
    if json_:
        print_json(result.sweep)
    else:
        _render_sweep(result.sweep)
    left = len(result.sweep.cells) - result.sweep.counts()["done"]
    if left:
        raise SweepIncompleteError(f"{left} of {len(result.sweep.cells)} cells did not finish (see the table); "
                                   f"run `catalog sweep --resume {result.sweep.id}` to retry them.")


def stability(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", "-t", metavar="TASK", help="Task whose circuits to compare.")],
    model: Annotated[str | None, typer.Option("--model", "-m", metavar="MODEL", help="Only this model.")] = None,
    method: Annotated[str | None, typer.Option(
        "--method", metavar="METHOD", help="Only circuits of this method (default: the one with most seeds).")] = None,
    json_: JsonOpt = False,
) -> None:
    """How stable a task's discovered circuit is across seeds (pairwise Jaccard, components in
    every seed, in most, in one) and across models."""
    from catalog.queries import stability as run

    result = run(open_catalog(ctx), task, model=model, method=method)
    if json_:
        print_json(result)
        return
    _render_stability(result)


# --- rendering --------------------------------------------------------------------------------


class _bar:
    """One overall progress bar on stderr (cells done, running, failed, time left)."""

    def __init__(self, enabled: bool, verbose: bool) -> None:
        self.enabled, self.verbose, self._progress, self._task = enabled, verbose, None, None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                  console=err_console, transient=True)
        self._progress.__enter__()
        return self.update

    def update(self, out: Any, counts: dict[str, int]) -> None:
        total = counts["done"] + counts["failed"] + counts["left"]
        status = f"running {counts['running']}, failed {counts['failed']}"
        if self._task is None:
            self._task = self._progress.add_task("sweep", total=total, status=status)
        self._progress.update(self._task, completed=counts["done"] + counts["failed"], status=status)
        if self.verbose and out is not None:
            self._progress.console.print(
                f"{out.key}: {out.status} in {out.seconds:.1f} s"
                + (f", faithfulness {fmt_score(out.faithfulness)}" if out.faithfulness is not None else "")
                + (f" ({out.error})" if out.error else ""), markup=False)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _render_sweep(s: SweepRecord) -> None:
    counts = s.counts()
    console.print(f"sweep #{s.id}: {s.status} on {s.executor} with {s.workers} workers, "
                  f"{s.wall_seconds or 0:.1f} s wall; cells: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    out = table("cell", "status", "circuit", "seconds", "faith.", "error")
    for c in s.cells:
        out.add_row(c.key, c.status, str(c.circuit_id or "-"), f"{c.seconds:.1f}" if c.seconds else "-",
                    fmt_score(c.faithfulness), (c.error or "")[:80])
    console.print(out)
    workers = s.cost.get("workers", {})
    if workers:
        console.print("workers: " + "; ".join(
            f"{w}: {v['cells']} cells, {v['cpu_seconds']:.1f} s CPU, peak {v['peak_rss_mb']:.0f} MB"
            + (f", {v['threads']} threads" if "threads" in v else "")
            for w, v in sorted(workers.items())))


def _render_sweeps(sweeps: list[SweepRecord]) -> None:
    if not sweeps:
        console.print("no sweeps yet (run one with `catalog sweep --task ioi --seed 0 --seed 1`).")
        return
    out = table("id", "status", "executor", "workers", "cells", "done", "seconds", "started")
    for s in sweeps:
        out.add_row(str(s.id), s.status, s.executor, str(s.workers), str(len(s.cells)), str(s.counts()["done"]),
                    f"{s.wall_seconds:.1f}" if s.wall_seconds else "-", f"{s.started_at:%Y-%m-%d %H:%M}")
    console.print(out)


def _render_stability(r: Stability) -> None:
    for m in r.models:
        console.print(f"{r.task} on {m.model} ({m.method}), {len(m.seeds)} seeds "
                      f"({', '.join(map(str, m.seeds))}), circuits {', '.join(f'#{i}' for i in m.circuits)}")
        if m.jaccard:
            console.print(f"  pairwise Jaccard: mean {fmt_score(m.jaccard_mean)}, min {fmt_score(m.jaccard_min)}, "
                          f"max {fmt_score(m.jaccard_max)} ({len(m.jaccard)} pairs)")
        console.print(f"  in every seed ({len(m.in_every)}): {', '.join(m.in_every) or '-'}")
        console.print(f"  in most seeds ({len(m.in_most)}): {', '.join(m.in_most) or '-'}")
        console.print(f"  in one seed only ({len(m.in_one)}): {', '.join(m.in_one) or '-'}")
    for p in r.across_models:
        console.print(f"{p.a} vs {p.b}, components in most seeds: Jaccard {fmt_score(p.overlap.jaccard)} "
                      f"({p.overlap.shared} shared of {p.overlap.size_a} and {p.overlap.size_b})")

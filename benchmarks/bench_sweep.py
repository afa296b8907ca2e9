"""Wall time of a sweep of 8 discoveries on the embedded model: one after another in one process,
on the process pool, and on Ray, side by side with ratios. Figures, not a timed test:

    python benchmarks/bench_sweep.py [--workers 2] [--n 32] [--pg postgresql://...] [--ray-address HOST:PORT]

The grid is ioi and colored-objects x eap and eap-ig x seeds 0 and 1. The sequential baseline
loads the model once and runs the 8 discoveries in turn (as `catalog discover` does for a grid);
the pool and Ray run the same cells with `--workers` workers, each loading the model once. Ray
needs a PostgreSQL catalog (`--pg`, or $CATALOG_TEST_POSTGRES_URL); without one its row is skipped.
Target: the pool and Ray at most 0.65 of the sequential time with two workers on two cores.

The sequential run computes with torch's default threads (one per core), so it already uses both
cores inside each matrix product. A second sequential run with one thread, in a fresh process so
that it pays the same imports, shows how much of that: the pool's ratio against it is what
running cells side by side gains over running them one by one on one core.

A last row runs the same one-thread loop in `--workers` plain processes side by side, each on its
share of the cells (the slowest one's time). It has no executor at all (no pool, no sweep records),
so it bounds what any executor can reach on this machine: where it is above the target, so is the
pool, and the gap between the two rows is what the executor itself costs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog import jobs
from catalog.models import load_model
from catalog.store import Catalog
from catalog.sweeps import SweepSpec, sweep
from catalog.sweeps.executors import THREAD_VARIABLES


def sequential(spec: SweepSpec, db: str, share: tuple[int, int] = (0, 1)) -> float:
    """Seconds to run the cells one after another in this process (those of `share` = (i, k): every
    k-th cell from the i-th), loading the model first."""
    with Catalog.open(db) as cat:
        t0 = time.perf_counter()
        loaded = load_model(None)
        for cell in spec.cells()[share[0]::share[1]]:
            jobs.discover(cat, cell.task, model=loaded, method=cell.method, n=spec.n, seed=cell.seed, progress=False)
        return time.perf_counter() - t0


def one_thread(args: argparse.Namespace, shares: int) -> float:
    """The slowest of `shares` fresh one-thread processes, run side by side, each on its share of
    the cells (`sequential` in a child whose torch and BLAS read one thread as they load)."""
    env = dict(os.environ, **{var: "1" for var in THREAD_VARIABLES})
    children = [subprocess.Popen([sys.executable, __file__, "--sequential-threads", "1", "--n", str(args.n),
                                  "--share", f"{i}/{shares}"], stdout=subprocess.PIPE, text=True, env=env)
                for i in range(shares)]
    times = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"the one-thread run exited with {child.returncode}")
        times.append(float(out.split()[-1]))
    return max(times)


def swept(spec: SweepSpec, db: str, executor: str, workers: int, address: str | None) -> float:
    with Catalog.open(db) as cat:
        t0 = time.perf_counter()
        result = sweep(cat, spec, executor=executor, workers=workers, address=address)
        wall = time.perf_counter() - t0
        done = result.sweep.counts()["done"]
        if done != len(spec.cells()):
            raise SystemExit(f"{executor}: only {done} of {len(spec.cells())} cells finished")
        return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--pg", default=os.environ.get("CATALOG_TEST_POSTGRES_URL"))
    ap.add_argument("--ray-address", default=os.environ.get("CATALOG_TEST_RAY_ADDRESS"))
    ap.add_argument("--sequential-threads", type=int, default=None, help=argparse.SUPPRESS)  # the child run
    ap.add_argument("--share", default="0/1", help=argparse.SUPPRESS)  # its cells: i/k, every k-th from the i-th
    args = ap.parse_args()
    spec = SweepSpec(tasks=("ioi", "colored-objects"), methods=("eap", "eap-ig"), seeds=(0, 1), n=args.n)
    if args.sequential_threads:  # torch reads the thread count from the environment when it loads
        with tempfile.TemporaryDirectory() as tmp:
            i, k = (int(part) for part in args.share.split("/"))
            print(sequential(spec, str(Path(tmp) / "seq1.db"), (i, k)))
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"8 discoveries ({', '.join(spec.tasks)} x {', '.join(spec.methods)} x seeds 0, 1; n={args.n}), "
          f"embedded model, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("sequential, one process", sequential(spec, str(Path(tmp) / "seq.db")))]
        rows.append(("sequential, one process, one thread", one_thread(args, 1)))
        rows.append((f"process pool, {args.workers} workers",
                     swept(spec, str(Path(tmp) / "pool.db"), "pool", args.workers, None)))
        if args.pg:
            from catalog.store.testing import fresh_postgres_database

            with fresh_postgres_database(args.pg) as url:
                rows.append((f"Ray, {args.workers} workers" + (" (existing head)" if args.ray_address else " (local)"),
                             swept(spec, url, "ray", args.workers, args.ray_address)))
        else:
            print("Ray: skipped (it writes to PostgreSQL: give --pg or set CATALOG_TEST_POSTGRES_URL)")
        rows.append((f"bound: {args.workers} one-thread processes", one_thread(args, args.workers)))
    base, single = rows[0][1], rows[1][1]
    for name, wall in rows:
        print(f"  {name:38s} {wall:7.1f} s   ratio {wall / base:.2f}   against one thread {wall / single:.2f}")
    print("target: pool and Ray at most 0.65 of sequential")


if __name__ == "__main__":
    main()

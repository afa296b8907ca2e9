"""Circuit-selecting methods beside the attribution methods, on the same prompts (not a test).

For each task, runs ACDC (at each threshold given), path patching, EAP and EAP-IG on the
embedded model and prints, per circuit: the seconds its method took, its size and its
faithfulness (normalised, as stored with circuits). Methods that choose their own circuit
(ACDC, path patching) are measured as chosen; after each, EAP and EAP-IG at the same number of
edges (top-k by |score|, dangling edges pruned), so each group compares circuits of one size.

    python benchmarks/bench_methods.py                      # ioi, 32 prompts
    python benchmarks/bench_methods.py --acdc-threshold 0.01 --acdc-threshold 0.002 --task ioi
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as catalog.discovery does, before torch loads

import torch

from catalog.discovery import evaluator, get_method, score, top_k
from catalog.discovery.contract import Granularity


def run_task(loaded: Any, task: str, n: int, batch_size: int,
             methods: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per selecting method's circuit, then each edge-scoring method's circuit of the
    same size: seconds (of the method's run), edges / heads / MLPs, faithfulness."""
    from catalog.tasks import get_task

    ds = get_task(task).build(loaded, n=n, seed=0)
    ev = evaluator(loaded, ds, batch_size=batch_size)
    selected: list[tuple[str, dict[str, Any], float, Any]] = []
    scored: list[tuple[str, dict[str, Any], float, Any]] = []
    for slug, params in methods:
        t0 = time.perf_counter()
        graph = score(loaded, ds, slug, batch_size=batch_size, **params)
        seconds = time.perf_counter() - t0
        own = get_method(slug).granularity is Granularity.CIRCUIT
        (selected if own else scored).append((slug, params, seconds, graph))
        print(f"  {task} {slug} {params}: {seconds:.1f} s", file=sys.stderr, flush=True)

    def row(slug: str, params: dict[str, Any], how: str, seconds: float, chosen: Any) -> dict[str, Any]:
        return {"task": task, "method": slug, "params": params, "selection": how, "seconds": seconds,
                "edges": len(chosen.circuit_edges), "heads": len(chosen.heads), "mlps": len(chosen.mlps),
                "faithfulness": ev.faithfulness(chosen)}

    rows = []
    for slug, params, seconds, graph in selected:
        rows.append(row(slug, params, "own choice", seconds, graph))
        k = len(graph.circuit_edges)
        rows += [row(s, p, f"top-{k} edges", t, top_k(g, k)) for s, p, t, g in scored]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", help="task (repeatable; default ioi)")
    parser.add_argument("--n", type=int, default=32, help="prompts per task (default 32)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--acdc-threshold", type=float, action="append",
                        help="ACDC's tau (repeatable; default: its own)")
    parser.add_argument("--acdc-metric", default="kl", help="kl (default) or task")
    parser.add_argument("--path-threshold", type=float, default=None, help="path patching's threshold")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from catalog.models import load_model

    acdc: list[tuple[str, dict[str, Any]]] = [
        ("acdc", {"metric": args.acdc_metric} | ({} if tau is None else {"threshold": tau}))
        for tau in (args.acdc_threshold or [None])]
    path: dict[str, Any] = {} if args.path_threshold is None else {"threshold": args.path_threshold}
    methods = [*acdc, ("path-patching", path), ("eap", {}), ("eap-ig", {})]
    loaded = load_model(None, device="cpu")
    rows = [r for task in (args.task or ["ioi"]) for r in run_task(loaded, task, args.n, args.batch_size, methods)]
    print(f"{'task':<16} {'method':<30} {'selection':<16} {'seconds':>8} {'edges':>6} {'heads':>6} "
          f"{'mlps':>5} {'faithfulness':>13}")
    for r in rows:
        name = r["method"] + "".join(f" {k}={v}" for k, v in r["params"].items())
        print(f"{r['task']:<16} {name:<30} {r['selection']:<16} {r['seconds']:>8.1f} {r['edges']:>6} "
              f"{r['heads']:>6} {r['mlps']:>5} {r['faithfulness']:>13.3f}")


if __name__ == "__main__":
    main()

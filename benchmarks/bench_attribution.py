"""Attribution-graph speed and memory on the embedded model, measured in one run (not a test).

Prints, for IOI and Colored Objects prompts: the time per prompt of the full attribution graph
(the real forward pass, the frozen replacement model, the batched backward sweep for every
active feature and the target logit), of pruning and of turning the result into a circuit graph,
next to the target (at most 5 s per prompt on two CPU cores), the graphs' sizes, and peak memory
(the process's max RSS).

    python benchmarks/bench_attribution.py                       # the shipped transcoders
    python benchmarks/bench_attribution.py --transcoders PATH    # another set
    python benchmarks/bench_attribution.py --prompts 4 --threads 1

Without a shipped set (and no --transcoders) it uses a seeded random TopK set of the shipped size
(512 features, k=32 per layer) and says so: the cost depends on the number of active features,
not on what they mean.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as catalog.discovery does, before torch loads

import torch

from catalog.models import load_model
from catalog.tasks import get_task
from catalog.transcoders.attribution import attribute
from catalog.transcoders.circuits import prompt_graph
from catalog.transcoders.model import Transcoder, TranscoderSet
from catalog.transcoders.pruning import prune
from catalog.transcoders.shipped import shipped_folder

TARGET_S = 5.0


def transcoders(path: str | None, model: str) -> tuple[TranscoderSet, str]:
    folder = Path(path) if path else shipped_folder(model)
    if folder.is_dir():
        return TranscoderSet.load(folder), str(folder)
    torch.manual_seed(0)
    return (TranscoderSet(model, [Transcoder(128, 512, 32) for _ in range(4)]),
            "random TopK set, 512 features, k=32 (no shipped set found)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transcoders", default=None)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per task (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the target's two cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(None)
    tset, source = transcoders(args.transcoders, loaded.name)
    print(f"model {loaded.name}; transcoders: {source}; {args.threads} thread(s)")
    print(f"{'task':<16}{'prompts':>8}{'tokens':>8}{'active':>8}{'kept':>7}{'edges':>7}"
          f"{'attribute s':>13}{'prune s':>9}{'graph s':>9}{'total s':>9}")
    worst = 0.0
    totals: list[float] = []
    for task in ("ioi", "colored-objects"):
        ds = get_task(task).build(loaded, n=args.prompts, seed=0)
        times = {"attribute": 0.0, "prune": 0.0, "graph": 0.0}
        sizes = {"tokens": 0, "active": 0, "kept": 0, "edges": 0}
        attribute(loaded.model, tset, ds.clean[0, :int(ds.positions[0]) + 1])  # warm-up, not timed
        for i in range(len(ds)):
            position = int(ds.positions[i])
            tokens = ds.clean[i, :position + 1]
            direction = torch.zeros(loaded.model.cfg.d_vocab, dtype=torch.float64)
            direction[int(ds.answers[i])] += 1.0
            direction[int(ds.wrong_answers[i])] -= 1.0
            t0 = time.perf_counter()
            att = attribute(loaded.model, tset, tokens, position, direction)
            t1 = time.perf_counter()
            kept = prune(att)
            t2 = time.perf_counter()
            pg = prompt_graph(att, kept, loaded.shape, tset, str, "target")
            t3 = time.perf_counter()
            times["attribute"] += t1 - t0
            times["prune"] += t2 - t1
            times["graph"] += t3 - t2
            totals.append(t3 - t0)
            worst = max(worst, t3 - t0)
            sizes["tokens"] += len(tokens)
            sizes["active"] += len(att.features)
            sizes["kept"] += int(pg.figures["kept_features"])
            sizes["edges"] += len(pg.graph.edges)
        n = len(ds)
        per = {k: v / n for k, v in times.items()}
        print(f"{task:<16}{n:>8}{sizes['tokens'] / n:>8.1f}{sizes['active'] / n:>8.0f}{sizes['kept'] / n:>7.0f}"
              f"{sizes['edges'] / n:>7.0f}{per['attribute']:>13.3f}{per['prune']:>9.3f}{per['graph']:>9.3f}"
              f"{sum(per.values()):>9.3f}")
    mean = sum(totals) / len(totals)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"attribution graph per prompt: mean {mean:.2f} s, worst {worst:.2f} s "
          f"(target at most {TARGET_S:.0f} s on two CPU cores: {'met' if worst <= TARGET_S else 'NOT met'})")
    print(f"peak memory (max RSS of this process, model and transcoders included): {rss:.0f} MB")


if __name__ == "__main__":
    main()

"""Transcoder training speed and memory on the embedded model, measured in one run (not a test).

Runs the trainer's own step (`catalog.transcoders.train`) for a number of steps and prints the
time per 1,000 steps split into its parts: drawing the batch, the one forward pass that collects
every layer's MLP input and output, and each layer's transcoder update; then the memory the
dictionaries and their optimiser hold, the size of the written safetensors, and peak memory
(the process's max RSS).

    python benchmarks/bench_transcoders.py                          # 100 steps, the shipped size
    python benchmarks/bench_transcoders.py --steps 200 --threads 2
    python benchmarks/bench_transcoders.py --features 1024 --k 32 --kind jumprelu
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as catalog.discovery does, before torch loads

import torch

from catalog.models import load_model
from catalog.transcoders.data import DataHash, TokenStream, padded
from catalog.transcoders.model import Transcoder, TranscoderSet
from catalog.transcoders.train import BATCH, _Trainer, activations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps (default 100)")
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--kind", default="topk", choices=("topk", "jumprelu"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loaded = load_model(None, device="cpu")
    model = loaded.model
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    layers = [Transcoder(d_model, args.features, args.k, args.kind) for _ in range(n_layers)]
    trainers = [_Trainer(tc, 2e-3) for tc in layers]
    stream = TokenStream(model.tokenizer, 0)
    digest = DataHash(stream.description)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    print(f"model {loaded.name}; {n_layers} layers x {args.features} features ({args.kind}, k {args.k}); "
          f"batch {BATCH} sequences; {args.threads} thread(s); {args.steps} steps")
    times = {"data": 0.0, "forward": 0.0, **{f"layer {i}": 0.0 for i in range(n_layers)}}
    tokens = 0
    for step in range(args.steps + 1):  # step 0 warms up (and initialises from data), not timed
        t0 = time.perf_counter()
        batch = stream.batch(BATCH)
        digest.update(batch)
        ids, mask = padded(batch, pad)
        t1 = time.perf_counter()
        acts = activations(model, ids, mask)
        t2 = time.perf_counter()
        spent = []
        for layer, (x, y) in enumerate(acts):
            s = time.perf_counter()
            trainers[layer].step(x, y, 2e-3)
            spent.append(time.perf_counter() - s)
        if step:
            times["data"] += t1 - t0
            times["forward"] += t2 - t1
            for layer, s in enumerate(spent):
                times[f"layer {layer}"] += s
            tokens += int(mask.sum())
    per_1000 = {k: 1000 * v / args.steps for k, v in times.items()}
    print(f"{'part':<12}{'s per 1,000 steps':>20}")
    for part, s in per_1000.items():
        print(f"{part:<12}{s:>20.1f}")
    total = sum(per_1000.values())
    print(f"{'total':<12}{total:>20.1f}   ({tokens / args.steps:.0f} tokens per step; "
          f"{per_1000['forward']:.1f} s of it is the one shared forward pass)")
    params = sum(p.numel() * p.element_size() for tc in layers for p in tc.parameters())
    adam = sum(t.numel() * t.element_size() for tr in trainers for st in tr.opt.state.values()
               for t in st.values() if torch.is_tensor(t))
    with tempfile.TemporaryDirectory() as tmp:
        for tc in layers:
            tc.requires_grad_(False)
        TranscoderSet(loaded.name, layers).save(Path(tmp))
        written = (Path(tmp) / "transcoders.safetensors").stat().st_size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"dictionaries {params / 1e6:.1f} MB + Adam state {adam / 1e6:.1f} MB; safetensors written "
          f"{written / 1e6:.1f} MB")
    print(f"peak memory (max RSS of this process, model included): {rss:.0f} MB")


if __name__ == "__main__":
    main()

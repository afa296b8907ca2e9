"""Remake the development transcoder set docs/FEATURES.md's IOI / Colored Objects figures use.

    python docs/dev_transcoders.py /tmp/dev-transcoders          # about 3 minutes on one core

A stand-in for the set shipped in the package, made before that set existed: one TopK
transcoder per layer of the embedded model (512 features, k = 16), trained for 1,500 Adam steps
per layer (learning rate 2e-3, batches of 1,024 tokens, decoder rows renormalised after each
step) on the MLP inputs and outputs of 76,961 tokens of the four tasks' prompts (dataset seeds 101
and 102, none of them the seed-0 prompts discovery explains). Each feature's label is the three
tokens its decoder direction promotes most through the unembedding (``+Red/Blue/97``). It prints
each layer's unexplained variance and dead features and writes the set in the layout of
`catalog.transcoders.model`, for ``--transcoders PATH``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from catalog.models import load_model
from catalog.tasks import get_task
from catalog.transcoders.model import Transcoder, TranscoderSet, input_hook, output_hook

FEATURES, K, STEPS, BATCH, LR = 512, 16, 1500, 1024, 2e-3
TASKS = (("ioi", 768), ("colored-objects", 768), ("induction", 512), ("greater-than", 512))


def activations(loaded: object) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Every layer's MLP input and output on the tasks' prompts (padding left out)."""
    model = loaded.model  # type: ignore[attr-defined]
    n = model.cfg.n_layers
    names = {input_hook(layer) for layer in range(n)} | {output_hook(layer) for layer in range(n)}
    xs: dict[int, list[torch.Tensor]] = {layer: [] for layer in range(n)}
    ys: dict[int, list[torch.Tensor]] = {layer: [] for layer in range(n)}
    for task, count in TASKS:
        for seed in (101, 102):
            ds = get_task(task).build(loaded, n=count // 2, seed=seed)
            with torch.no_grad():
                _, cache = model.run_with_cache(ds.clean, names_filter=lambda h: h in names)
            mask = ds.role_ids >= 0
            for layer in range(n):
                xs[layer].append(cache[input_hook(layer)][mask])
                ys[layer].append(cache[output_hook(layer)][mask])
    return {k: torch.cat(v) for k, v in xs.items()}, {k: torch.cat(v) for k, v in ys.items()}


def train(x: torch.Tensor, y: torch.Tensor) -> tuple[Transcoder, dict[str, float]]:
    tc = Transcoder(x.shape[1], FEATURES, K)
    with torch.no_grad():
        tc.b_dec.copy_(y.mean(0))
    opt = torch.optim.Adam(tc.parameters(), lr=LR)
    for _ in range(STEPS):
        idx = torch.randint(0, x.shape[0], (BATCH,))
        loss = ((tc(x[idx]) - y[idx]) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            tc.W_dec.div_(tc.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
    with torch.no_grad():
        fvu = float(((tc(x) - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
        dead = int(((tc.encode(x) > 0).sum(0) == 0).sum())
    tc.requires_grad_(False)
    return tc, {"unexplained_variance": fvu, "dead_features": dead}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    loaded = load_model(None, device="cpu")
    x, y = activations(loaded)
    layers, figures, labels = [], [], {}
    w_u = loaded.model.W_U.detach()
    for layer in sorted(x):
        t0 = time.perf_counter()
        tc, fig = train(x[layer], y[layer])
        print(f"layer {layer}: unexplained variance {fig['unexplained_variance']:.3f}, "
              f"{fig['dead_features']} dead features ({time.perf_counter() - t0:.0f} s)", flush=True)
        layers.append(tc)
        figures.append(fig)
        alive = (tc.encode(x[layer][:4096]) > 0).any(0)
        for i in alive.nonzero().flatten().tolist():
            tops = (tc.W_dec[i] @ w_u).topk(3).indices.tolist()
            words = [loaded.tokenizer.decode([t]).strip() or repr(loaded.tokenizer.decode([t])) for t in tops]
            labels[f"{layer}.{i}"] = {"label": "+" + "/".join(words), "promotes": words}
    training = {"steps": STEPS, "tokens": int(x[0].shape[0]), "script": "docs/dev_transcoders.py"}
    TranscoderSet("catalog-default", layers, {"dictionary": "tc", "layers": figures, "training": training},
                  labels).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "dev-transcoders"))

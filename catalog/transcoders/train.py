"""Train one transcoder per layer of a model, all layers from one forward pass per batch.

Each step draws a batch of sequences (`catalog.transcoders.data`), runs the model once with hooks
on every layer's MLP input and output, and takes one Adam step per layer's transcoder on that
layer's (input, output) pairs at every real token. The loss is the fraction of variance
unexplained (FVU) of the MLP output, so every layer's loss is on the same scale whatever its
output norm:

    FVU = sum((out - predicted)^2) / sum((out - mean(out))^2)

TopK transcoders add the AuxK loss of Gao et al. (2024): the features that have not fired for
`DEAD_STEPS` steps predict the remaining error through their own top activations, which brings
dead features back. JumpReLU transcoders learn their thresholds with straight-through estimates
(Rajamanoharan et al. 2024) and an L0 penalty whose weight is steered so the mean number of active
features per token approaches `k`. Decoder rows are kept at unit norm, so a feature's activation
carries its size and its decoder row only its direction.

After training, `measure` gives each layer's FVU, dead features (never active) and mean L0 on
held-out sequences; they are stored in the set's config with the provenance of the run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from catalog.errors import InvalidInputError
from catalog.transcoders.data import HELD_OUT, DataHash, TokenStream, curriculum_for, padded
from catalog.transcoders.model import Activation, Transcoder, TranscoderSet, input_hook, output_hook

if TYPE_CHECKING:
    from catalog.transcoders.views import TranscoderSetInfo

Progress = Callable[[str, int, int], None]
Report = Callable[[str], None]

#: Steps without firing after which a feature counts as dead for the AuxK loss.
DEAD_STEPS = 100
#: Weight of the AuxK loss.
AUX_WEIGHT = 1 / 32
#: Width of the JumpReLU straight-through window, in units of pre-activation.
BANDWIDTH = 0.1
#: Sequences per step; held-out batches measured after training.
BATCH = 32
HELD_OUT_BATCHES = 16


class _JumpReLU(torch.autograd.Function):
    """``pre * (pre > threshold)``, with the threshold's gradient estimated through a rectangle
    window of width `BANDWIDTH` around it."""

    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre, threshold = ctx.saved_tensors
        window = ((pre - threshold).abs() < BANDWIDTH / 2).to(pre.dtype) / BANDWIDTH
        return grad * (pre > threshold).to(pre.dtype), (-threshold * window * grad).sum(0)


class _Step(torch.autograd.Function):
    """``pre > threshold`` as 0/1, with the same straight-through estimate for the threshold."""

    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        pre, threshold = ctx.saved_tensors
        window = ((pre - threshold).abs() < BANDWIDTH / 2).to(pre.dtype) / BANDWIDTH
        return None, (-window * grad).sum(0)


def fvu(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Fraction of the variance of `target` ``[N, d]`` that `predicted` leaves unexplained.

    >>> t = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    >>> float(fvu(t, torch.zeros(2, 2))), float(fvu(t, t))
    (1.0, 0.0)
    """
    total = (target - target.mean(0)).pow(2).sum()
    return (target - predicted).pow(2).sum() / total.clamp_min(1e-12)


def activations(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's (MLP input, MLP output) at the real tokens, from one forward pass."""
    n = model.cfg.n_layers
    names = {input_hook(layer) for layer in range(n)} | {output_hook(layer) for layer in range(n)}
    with torch.no_grad():
        _, cache = model.run_with_cache(ids.to(model.cfg.device), names_filter=lambda name: name in names,
                                        return_type=None)
    m = mask.to(model.cfg.device)
    return [(cache[input_hook(layer)][m].float().cpu(), cache[output_hook(layer)][m].float().cpu())
            for layer in range(n)]


class _Trainer:
    """One layer's transcoder with its optimiser and its dead-feature counters."""

    def __init__(self, tc: Transcoder, lr: float) -> None:
        self.tc = tc
        self.params = [tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec] + ([tc.threshold] if tc.activation == "jumprelu" else [])
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.idle = torch.zeros(tc.n_features, dtype=torch.long)
        self.l0_weight = 1e-3
        self.started = False

    def start(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Data-dependent initialisation from the first batch: the decoder bias at the output's
        mean, small encoder weights, JumpReLU thresholds where each feature fires on about k/n_features of the tokens."""
        tc = self.tc
        with torch.no_grad():
            tc.b_dec.copy_(y.mean(0))
            tc.W_enc.mul_(0.1)  # small first activations: the first predictions stay near the mean
            if tc.activation == "jumprelu":
                pre = tc.pre_activations(x)
                tc.threshold.copy_(pre.quantile(1 - tc.k / tc.n_features, dim=0).clamp_min(0.0))
        self.started = True

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
        tc = self.tc
        if not self.started:
            self.start(x, y)
        for group in self.opt.param_groups:
            group["lr"] = lr
        pre = tc.pre_activations(x)
        if tc.activation == "jumprelu":
            acts = _JumpReLU.apply(pre, tc.threshold)
            l0 = _Step.apply(pre, tc.threshold).sum(-1).mean()
        else:
            acts = tc.sparsify(pre)
            l0 = None
        predicted = tc.decode(acts)
        loss = fvu(y, predicted)
        reported = float(loss.detach())
        fired = (acts > 0).any(0)
        self.idle = torch.where(fired, torch.zeros_like(self.idle), self.idle + 1)
        if l0 is not None:
            loss = loss + self.l0_weight * l0 / tc.k
            # Steer the penalty so the mean L0 settles near k.
            self.l0_weight *= 1.02 if float(l0) > tc.k else 1 / 1.02
        else:
            dead = self.idle >= DEAD_STEPS
            if bool(dead.any()):
                k_aux = min(int(dead.sum()), max(tc.k, tc.d_model // 2))
                masked = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
                aux = torch.zeros_like(pre).scatter(-1, masked.indices, torch.relu(masked.values))
                residual = (y - predicted).detach()
                loss = loss + AUX_WEIGHT * fvu(residual, aux @ tc.W_dec)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            tc.W_dec.div_(tc.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
            if tc.activation == "jumprelu":
                tc.threshold.clamp_(min=0.0)
        return reported


def check_options(features: int, k: int, steps: int, batch_size: int = BATCH) -> None:
    """A one-line `InvalidInputError` for sizes no set can be trained with."""
    if features < 1 or steps < 1 or batch_size < 1:
        raise InvalidInputError("--features, --steps and the batch size must be positive.")
    if not 0 < k <= features:
        raise InvalidInputError(f"--k must be between 1 and --features ({features}); got {k}.")


def _lr(step: int, steps: int, lr: float) -> float:
    """Constant, then a linear decay to zero over the last fifth of the steps."""
    tail = max(1, steps // 5)
    return lr * min(1.0, (steps - step) / tail)


def measure(model: Any, tset: TranscoderSet, stream: TokenStream, batches: int = HELD_OUT_BATCHES,
            batch_size: int = BATCH, progress: Progress | None = None) -> list[dict[str, float]]:
    """Per layer, on `batches` of `stream`: FVU, dead features (never active) and mean active
    features per token (``l0``)."""
    pad = _pad_id(model)
    n_layers = len(tset.layers)
    sq = [0.0] * n_layers
    ys: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    fired = [torch.zeros(tset.n_features, dtype=torch.bool) for _ in range(n_layers)]
    active = [0.0] * n_layers
    tokens = 0
    for b in range(batches):
        ids, mask = padded(stream.batch(batch_size), pad)
        with torch.no_grad():
            for layer, (x, y) in enumerate(activations(model, ids, mask)):
                acts = tset.layers[layer].encode(x)
                sq[layer] += float((y - tset.layers[layer].decode(acts)).pow(2).sum())
                ys[layer].append(y)
                on = acts > 0
                fired[layer] |= on.any(0)
                active[layer] += float(on.sum())
        tokens += int(mask.sum())
        if progress:
            progress("held-out activations", b + 1, batches)
    out = []
    for layer in range(n_layers):
        y = torch.cat(ys[layer])
        total = float((y - y.mean(0)).pow(2).sum())
        out.append({"layer": layer, "fvu": round(sq[layer] / max(total, 1e-12), 6),
                    "dead_features": int((~fired[layer]).sum()),
                    "l0": round(active[layer] / max(tokens, 1), 3)})
    return out


def _pad_id(model: Any) -> int:
    from catalog.tasks.tokens import Tokens

    return Tokens(model.tokenizer).pad_id


def train_transcoders(loaded: Any, features: int = 512, k: int = 32, steps: int = 1500,
                      activation: Activation = "topk", seed: int = 0, lr: float = 2e-3,
                      batch_size: int = BATCH, threads: int | None = None,
                      progress: Progress | None = None, report: Report | None = None,
                      report_every: int = 100, held_out_batches: int = HELD_OUT_BATCHES) -> TranscoderSet:
    """Train a `TranscoderSet` for `loaded` (a `LoadedModel`); see the module docstring.

    The set's config holds the provenance: model and revision, data (mix and hash), the run's
    parameters and time, and per-layer held-out FVU, dead features and L0.
    """
    check_options(features, k, steps, batch_size)
    if threads is not None:
        torch.set_num_threads(threads)
    model = loaded.model
    if getattr(model, "tokenizer", None) is None:
        raise InvalidInputError(f"{loaded.name} has no tokenizer: transcoders are trained on text.")
    torch.manual_seed(seed)
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    layers = [Transcoder(d_model, features, k, activation) for _ in range(n_layers)]
    trainers = [_Trainer(tc, lr) for tc in layers]
    curriculum = curriculum_for(loaded.name)
    stream = TokenStream(model.tokenizer, seed, curriculum)
    digest = DataHash(stream.description)
    pad = _pad_id(model)
    started = time.perf_counter()
    recent = [0.0] * n_layers
    for step in range(steps):
        batch = stream.batch(batch_size)
        digest.update(batch)
        ids, mask = padded(batch, pad)
        rate = _lr(step, steps, lr)
        for layer, (x, y) in enumerate(activations(model, ids, mask)):
            recent[layer] = trainers[layer].step(x, y, rate)
        if progress:
            progress("training steps", step + 1, steps)
        if report and ((step + 1) % report_every == 0 or step + 1 == steps):
            figures = " ".join(f"L{i} {v:.3f}" for i, v in enumerate(recent))
            report(f"step {step + 1}/{steps}: training FVU {figures}")
    seconds = time.perf_counter() - started
    for tc in layers:
        tc.requires_grad_(False)
    tset = TranscoderSet(loaded.name, layers)
    held_out = TokenStream(model.tokenizer, seed + HELD_OUT, curriculum)
    figures = measure(model, tset, held_out, batches=held_out_batches, batch_size=batch_size, progress=progress)
    tset.config = {
        "dictionary": "tc",
        "model_revision": getattr(loaded.shape, "revision", None),
        "layers": figures,
        "data": {**stream.description, "sha256": digest.hexdigest(), "tokens": digest.tokens,
                 "held_out_seed": seed + HELD_OUT},
        "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "threads": threads,
                     "seconds": round(seconds, 1),
                     "seconds_per_1000_steps": round(1000 * seconds / steps, 1),
                     "loss": "fvu" + ("+auxk" if activation == "topk" else "+l0"),
                     "torch": torch.__version__, "python": sys.version.split()[0]},
    }
    return tset


def mean_fvu(figures: list[dict[str, float]]) -> float:
    """The layers' mean FVU (for one-line summaries).

    >>> mean_fvu([{"fvu": 0.02}, {"fvu": 0.04}])
    0.03
    """
    return round(math.fsum(f["fvu"] for f in figures) / max(1, len(figures)), 6)


def remake_command(model: str, features: int, k: int, steps: int, activation: str, seed: int) -> str:
    """The command that trains the same set again.

    >>> remake_command("catalog-default", 512, 24, 1500, "topk", 0)
    'catalog transcoders train --model catalog-default --features 512 --k 24 --steps 1500 --kind topk --seed 0'
    """
    return (f"catalog transcoders train --model {model} --features {features} --k {k} --steps {steps} "
            f"--kind {activation} --seed {seed}")


def train_to_folder(model: str | None, out: str | Path | None = None, features: int = 512, k: int = 32,
                    steps: int = 1500, activation: Activation = "topk", seed: int = 0,
                    threads: int | None = None, device: str | None = "cpu", labels: bool = True,
                    progress: bool = True, report: Report | None = None) -> TranscoderSetInfo:
    """Train a set for `model` (a name or folder; None: the embedded default), label its features
    (`catalog.transcoders.labels`) and write it to `out` (default ``./transcoders-MODEL``), which
    must not hold a set already; return its figures. The folder appears only once complete."""
    import shutil
    import tempfile

    from catalog.jobs import _progress
    from catalog.models import load_model
    from catalog.transcoders.labels import feature_labels
    from catalog.transcoders.views import TranscoderSetInfo

    if activation not in ("topk", "jumprelu"):
        raise InvalidInputError(f"Unknown --kind '{activation}': use topk or jumprelu.")
    if threads is not None and threads < 1:
        raise InvalidInputError("--threads must be at least 1.")
    check_options(features, k, steps)
    loaded = load_model(model, device=device)
    folder = Path(out) if out is not None else Path(f"transcoders-{loaded.name}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInputError(f"{folder} exists and is not empty: give a new --out folder or remove it.")
    with _progress(progress, f"transcoders for {loaded.name}") as bar:
        tset = train_transcoders(loaded, features=features, k=k, steps=steps, activation=activation, seed=seed,
                                 threads=threads, progress=bar, report=report)
        tset.config["training"]["command"] = remake_command(loaded.name, features, k, steps, activation, seed)
        if labels:
            tset.labels = feature_labels(loaded, tset, seed=seed, progress=bar)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tset.save(staging)
        umask = os.umask(0)
        os.umask(umask)  # mkdtemp makes the folder private: give it (and its files) the usual modes
        staging.chmod(0o777 & ~umask)
        for path in staging.iterdir():
            path.chmod(0o666 & ~umask)
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TranscoderSetInfo.read(folder)

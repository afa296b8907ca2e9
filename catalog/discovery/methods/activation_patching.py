"""Activation patching: the exact effect of each head and MLP, patched one at a time (node level).

A component's score is how much the mean task metric drops when its whole output is patched:
``score = mean m(clean) - mean m(patched)``, so a positive score means it helps the task
behaviour (the sign the attribution methods' scores have). Several components run in one forward
pass by repeating the batch (copy ``c`` patches component ``c``); the result equals a
one-component-per-pass loop because copies do not interact (tested).
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.contract import MethodInputs, NodeScores
from catalog.discovery.engine import (
    DEFAULT_MAX_ROWS,
    Ablator,
    Metric,
    Progress,
    batches,
    copies_per_pass,
    device_of,
    max_rows_for,
    metric_per_copy,
    n_examples,
    prepared,
    task_metric,
)
from catalog.discovery.layout import Layout
from catalog.naming import attn_hook, block_hook
from catalog.provenance import Ablation


def run(inputs: MethodInputs) -> NodeScores:
    """The `Method` entry point: every head's and MLP's exact score."""
    return NodeScores(activation_patching(inputs.model, inputs.dataset, inputs.ablation, inputs.batch_size,
                                          progress=inputs.progress, metric=inputs.metric))


def components(layout: Layout) -> list[int]:
    """Source indices of every head and MLP (``input`` is not a component)."""
    return list(range(1, layout.n_sources))


def _replace_hooks(model: Any, layout: Layout, ablated: torch.Tensor, chunk: list[int],
                   batch: int, where: list[torch.Tensor] | None = None) -> list[tuple[str, Any]]:
    """Hooks replacing component ``chunk[c]``'s output with its ablated value in copy ``c``.

    An MLP's output is overwritten at ``hook_mlp_out``. A head's is swapped inside the layer's
    attention output: ``attn_out + ablated_h - z_h @ W_O[h]``, with ``z`` from ``hook_z`` of the
    same pass (no per-head result tensor is built). With `where` (one ``[batch, T]`` 0/1 tensor
    per copy, in the activations' dtype) only those positions are replaced.
    """
    copies = len(chunk)
    heads: dict[int, list[tuple[int, int, int]]] = {}
    mlps: dict[int, list[tuple[int, int]]] = {}
    for c, src in enumerate(chunk):
        rel, layer = (src - 1) % layout.block, (src - 1) // layout.block
        if rel < layout.n_heads:
            heads.setdefault(layer, []).append((c, rel, src))
        else:
            mlps.setdefault(layer, []).append((c, src))
    hooks: list[tuple[str, Any]] = []

    for layer, items in heads.items():
        z_seen: list[torch.Tensor] = []

        def keep_z(z: torch.Tensor, hook: Any, z_seen: list[torch.Tensor] = z_seen) -> None:
            z_seen[:] = [z]

        def swap(act: torch.Tensor, hook: Any, layer: int = layer, items: list = items,
                 z_seen: list[torch.Tensor] = z_seen) -> torch.Tensor:
            out = act.view(copies, batch, *act.shape[1:])
            z = z_seen[0].view(copies, batch, *z_seen[0].shape[1:])
            w_o = model.blocks[layer].attn.W_O
            for c, head, src in items:
                delta = ablated[:, :, src] - z[c, :, :, head] @ w_o[head]
                out[c] += delta if where is None else where[c].unsqueeze(-1) * delta
            return act

        hooks += [(attn_hook(layer, "z"), keep_z), (block_hook(layer, "attn_out"), swap)]

    for layer, pairs in mlps.items():
        def replace(act: torch.Tensor, hook: Any, pairs: list = pairs) -> torch.Tensor:
            out = act.view(copies, batch, *act.shape[1:])
            for c, src in pairs:
                if where is None:
                    out[c] = ablated[:, :, src]
                else:
                    out[c] += where[c].unsqueeze(-1) * (ablated[:, :, src] - out[c])
            return act

        hooks.append((block_hook(layer, "mlp_out"), replace))
    return hooks


def _can_start_midway(model: Any) -> bool:
    """Whether a forward pass may start from a cached residual (no masks or extra inputs needed)."""
    tok = getattr(model, "tokenizer", None)
    return (model.cfg.positional_embedding_type != "shortformer"
            and getattr(tok, "padding_side", "right") != "left")


def clean_run(model: Any, layout: Layout, part: Any, clean: torch.Tensor, midway: bool,
              metric: Metric = task_metric) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(summed clean metric of the batch, each layer's input residual when `midway`)."""
    resid: dict[int, torch.Tensor] = {}
    keep = [(block_hook(layer, "resid_pre"),
             lambda act, hook, layer=layer, resid=resid: resid.__setitem__(layer, act))
            for layer in range(layout.n_layers)] if midway else []
    with model.hooks(fwd_hooks=keep):
        base = metric(part, model(clean)).to(torch.float64).sum().cpu()
    return base, resid


def patched_metric(model: Any, part: Any, clean: torch.Tensor, resid: dict[int, torch.Tensor], layer: int,
                   copies: int, hooks: list[tuple[str, Any]], metric: Metric = task_metric) -> torch.Tensor:
    """Summed metric ``[copies]`` of the batch repeated `copies` times under `hooks`, starting at
    `layer` from the cached clean residual when there is one (nothing before it changes)."""
    with model.hooks(fwd_hooks=hooks):
        if resid:
            logits = model(resid[layer].repeat(copies, 1, 1), start_at_layer=layer)
        else:
            logits = model(clean.repeat(copies, 1))
    return metric_per_copy(part, logits, copies, metric).sum(1).cpu()


@torch.no_grad()
def activation_patching(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                        batch_size: int = 32, components_per_pass: int | None = None,
                        max_rows: int = DEFAULT_MAX_ROWS, share_prefix: bool = True,
                        progress: Progress | None = None, metric: Metric = task_metric) -> dict[str, float]:
    """Score every head and MLP by patching its whole output; returns id -> score.

    Components of one layer share a forward pass (`components_per_pass` copies of the batch, by
    default as many as `max_rows` allows), and with `share_prefix` the pass starts at that layer
    from the clean run's cached residual, since nothing before it changes. Exact either way;
    ``components_per_pass=1, share_prefix=False`` is the plain one-component-per-pass loop.
    """
    with prepared(model, split_qkv=False) as layout:
        comps = components(layout)
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        totals = torch.zeros(len(comps), dtype=torch.float64)
        n = n_examples(dataset)
        midway = share_prefix and _can_start_midway(model)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            b = clean.shape[0]
            ablated = ablator.values(clean, corrupt)
            base, resid = clean_run(model, layout, part, clean, midway, metric)
            rows = max_rows_for(model, layout, clean.shape[1], max_rows)
            per_pass = components_per_pass or copies_per_pass(b, len(comps), rows)
            for layer in range(layout.n_layers):
                in_layer = [i for i, src in enumerate(comps) if (src - 1) // layout.block == layer]
                for start in range(0, len(in_layer), per_pass):
                    idx = in_layer[start:start + per_pass]
                    chunk = [comps[i] for i in idx]
                    patched = patched_metric(model, part, clean, resid, layer, len(chunk),
                                             _replace_hooks(model, layout, ablated, chunk, b), metric)
                    totals[idx] += base - patched
            done += b
            if progress:
                progress("activation patching", done, n)
        return {layout.sources[src]: float(totals[i] / n) for i, src in enumerate(comps)}

"""Exact patching methods: activation patching (node level) and edge patching (edge level).

Both score a component or edge by how much the mean task metric drops when it alone is patched:
``score = mean m(clean) - mean m(patched)``, so a positive score means the component helps the
task behaviour (the sign EAP-IG's attribution scores have). Both batch several patterns into one
forward pass by repeating the batch (copy ``c`` patches item ``c``); the result is the same as a
one-item-per-pass loop because copies do not interact.
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.engine import (
    Ablator,
    Progress,
    batches,
    chunked,
    copies_per_pass,
    device_of,
    metric_per_copy,
    n_examples,
    patched_logits,
    prepared,
)
from catalog.discovery.layout import Layout
from catalog.provenance import Ablation

#: Rows (examples x copies) per patched forward pass when the caller does not say.
DEFAULT_MAX_ROWS = 1024


def components(layout: Layout) -> list[int]:
    """Source indices of every head and MLP (``input`` is not a component)."""
    return list(range(1, layout.n_sources))


def _replace_hooks(layout: Layout, ablated: torch.Tensor, chunk: list[int], batch: int) -> list[tuple[str, Any]]:
    """Hooks overwriting component ``chunk[c]``'s output with its ablated value in copy ``c``."""
    copies = len(chunk)
    by_hook: dict[str, list[tuple[int, int | None, int]]] = {}
    for c, src in enumerate(chunk):
        rel = (src - 1) % layout.block
        layer = (src - 1) // layout.block
        if rel < layout.n_heads:
            by_hook.setdefault(f"blocks.{layer}.attn.hook_result", []).append((c, rel, src))
        else:
            by_hook.setdefault(f"blocks.{layer}.hook_mlp_out", []).append((c, None, src))

    def make(items: list[tuple[int, int | None, int]]) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            view = act.view(copies, batch, *act.shape[1:])
            for c, head, src in items:
                if head is None:
                    view[c] = ablated[:, :, src]
                else:
                    view[c, :, :, head] = ablated[:, :, src]
            return act

        return hook

    return [(name, make(items)) for name, items in by_hook.items()]


@torch.no_grad()
def activation_patching(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                        batch_size: int = 32, components_per_pass: int | None = None,
                        max_rows: int = DEFAULT_MAX_ROWS, progress: Progress | None = None) -> dict[str, float]:
    """Score every head and MLP by patching its whole output; returns id -> score.

    `components_per_pass` (default: as many as `max_rows` allows) sets how many components share
    one forward pass; 1 gives the plain loop.
    """
    with prepared(model) as layout:
        comps = components(layout)
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        totals = torch.zeros(len(comps), dtype=torch.float64)
        n = n_examples(dataset)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            b = clean.shape[0]
            ablated = ablator.values(clean, corrupt)
            base = part.metric(model(clean)).to(torch.float64).sum().cpu()
            per_pass = components_per_pass or copies_per_pass(b, len(comps), max_rows)
            for start in range(0, len(comps), per_pass):
                chunk = comps[start:start + per_pass]
                with model.hooks(fwd_hooks=_replace_hooks(layout, ablated, chunk, b)):
                    logits = model(clean.repeat(len(chunk), 1))
                patched = metric_per_copy(part, logits, len(chunk)).sum(1).cpu()
                totals[start:start + len(chunk)] += base - patched
            done += b
            if progress:
                progress("activation patching", done, n)
        return {layout.sources[src]: float(totals[i] / n) for i, src in enumerate(comps)}


@torch.no_grad()
def edge_patching(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                  batch_size: int = 32, edges_per_pass: int | None = None,
                  max_rows: int = DEFAULT_MAX_ROWS, progress: Progress | None = None) -> list[list[float]]:
    """Exact score of every edge, each patched alone: dense ``[source][destination]`` lists."""
    with prepared(model) as layout:
        dev = device_of(model)
        edges = list(layout.edges())
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        scores = torch.zeros(layout.n_sources, layout.n_destinations, dtype=torch.float64)
        n = n_examples(dataset)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, dev):
            b = clean.shape[0]
            ablated = ablator.values(clean, corrupt)
            base = part.metric(model(clean)).to(torch.float64).sum().cpu()
            per_pass = edges_per_pass or copies_per_pass(b, len(edges), max_rows)
            for chunk in chunked(edges, per_pass):
                mask = torch.zeros(len(chunk), layout.n_sources, layout.n_destinations, device=dev)
                for c, (s, d) in enumerate(chunk):
                    mask[c, s, d] = 1.0
                logits = patched_logits(model, layout, clean, ablated, mask)
                patched = metric_per_copy(part, logits, len(chunk)).sum(1).cpu()
                for c, (s, d) in enumerate(chunk):
                    scores[s, d] += base - patched[c]
            done += b
            if progress:
                progress("edge patching", done, n)
        return (scores / n).tolist()

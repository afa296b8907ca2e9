"""Activation patching: the exact effect of each head and MLP, patched one at a time (node level).

A component's score is how much the mean task metric drops when its whole output is patched:
``score = mean m(clean) - mean m(patched)``, so a positive score means it helps the task
behaviour (the sign the attribution methods' scores have). Several components run in one forward
pass by repeating the batch (copy ``c`` patches component ``c``); the result equals a
one-component-per-pass loop because copies do not interact (tested). A pass reuses the clean run
of its batch: it starts after the patched layer's attention (which reads an unchanged residual),
and positions before the first clean/corrupt difference enter as cached keys and values, since
no patch changes them. That is what makes batching pay on a CPU, where copies of a batch cost
what separate passes cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


def _plain_blocks(model: Any) -> bool:
    """Whether every block is ``resid_mid = resid_pre + attn_out; resid_post = resid_mid +
    mlp(ln2(resid_mid))`` (or ``resid_pre + attn_out`` without MLPs), so that the rest of a block
    can be run from its attention output (not post-norm, not parallel attention and MLP)."""
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    cfg = model.cfg
    return not cfg.parallel_attn_mlp and cfg.original_architecture not in POST_NORM_ARCHITECTURES


def unchanged_prefix(clean: torch.Tensor, corrupt: torch.Tensor, ablation: Ablation) -> int:
    """How many leading positions no patch can change in this batch (at most ``T - 1``).

    Under counterfactual ablation every position before the first token where a clean and a
    corrupt prompt differ computes the same values in both runs (attention only looks back); mean
    and zero ablation change every position.
    """
    if Ablation(ablation) is not Ablation.COUNTERFACTUAL:
        return 0
    differs = (clean != corrupt).any(0).nonzero()
    return min(int(differs[0]) if len(differs) else clean.shape[1], clean.shape[1] - 1)


def block_work(n_layers: int, n_heads: int, has_mlp: bool, length: int, start: int,
               full_passes: int = 0) -> tuple[float, float]:
    """(patched from the clean run, plain loop): block computations of scoring every component
    of one prompt, one block at one position being 1 (attention and MLP half each when a block
    has both), plus `full_passes` full passes both ways make (the clean run, the counterfactual).

    A copy patching a head of layer ``l`` runs that layer's MLP and every later block, one
    patching an MLP every later block, on positions from `start` (`unchanged_prefix`) on; the
    loop runs every block on every position once per component. Their quotient is the least
    fraction of the loop's work that patching from the clean run must still do.

    >>> block_work(n_layers=2, n_heads=1, has_mlp=True, length=4, start=1)
    (9.0, 32.0)
    >>> block_work(n_layers=2, n_heads=1, has_mlp=True, length=4, start=1, full_passes=2)
    (25.0, 48.0)
    """
    own = 0.5 if has_mlp else 0.0
    per_prompt = sum(n_heads * (own + n_layers - 1 - layer) + int(has_mlp) * (n_layers - 1 - layer)
                     for layer in range(n_layers))
    shared = float(full_passes * n_layers * length)
    components = (n_heads + int(has_mlp)) * n_layers
    return shared + per_prompt * (length - start), shared + components * n_layers * length


@dataclass
class CleanPass:
    """What a patched pass of one batch reuses from the clean run.

    `start` leading positions are shared (`unchanged_prefix`); the per-layer tensors hold the
    positions from `start` on, the keys and values the positions before it.
    """

    base: torch.Tensor  # summed clean metric of the batch
    logits: torch.Tensor
    start: int
    resid: list[torch.Tensor] = field(default_factory=list)
    attn_out: list[torch.Tensor] = field(default_factory=list)
    z: list[torch.Tensor] = field(default_factory=list)
    mlp_out: list[torch.Tensor] = field(default_factory=list)
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)


def clean_pass(model: Any, layout: Layout, part: Any, clean: torch.Tensor, start: int,
               metric: Metric = task_metric) -> CleanPass:
    """Run the clean batch once, keeping each layer's input, attention output, ``z``, MLP output
    and (for the `start` shared positions) keys and values."""
    kept: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, hook: Any) -> None:
        kept[hook.name] = act

    names = [block_hook(layer, "resid_pre") for layer in range(layout.n_layers)]
    names += [block_hook(layer, "attn_out") for layer in range(layout.n_layers)]
    names += [attn_hook(layer, "z") for layer in range(layout.n_layers)]
    if layout.has_mlp:
        names += [block_hook(layer, "mlp_out") for layer in range(layout.n_layers)]
    if start:
        names += [attn_hook(layer, kv) for layer in range(layout.n_layers) for kv in ("k", "v")]
    with model.hooks(fwd_hooks=[(name, keep) for name in names]):
        logits = model(clean)
    run = CleanPass(base=metric(part, logits).to(torch.float64).sum().cpu(), logits=logits, start=start)
    for layer in range(layout.n_layers):
        run.resid.append(kept[block_hook(layer, "resid_pre")][:, start:])
        run.attn_out.append(kept[block_hook(layer, "attn_out")][:, start:])
        run.z.append(kept[attn_hook(layer, "z")][:, start:])
        if layout.has_mlp:
            run.mlp_out.append(kept[block_hook(layer, "mlp_out")][:, start:])
        if start:
            run.keys.append(kept[attn_hook(layer, "k")][:, :start])
            run.values.append(kept[attn_hook(layer, "v")][:, :start])
    return run


def _prefix_cache(run: CleanPass, copies: int) -> list[Any] | None:
    """Frozen key/value cache entries holding the shared positions, once per copy."""
    if not run.start:
        return None
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

    def rep(t: torch.Tensor) -> torch.Tensor:
        return t.repeat(copies, *([1] * (t.dim() - 1)))

    return [TransformerLensKeyValueCacheEntry(rep(k), rep(v), frozen=True) for k, v in zip(run.keys, run.values)]


def patched_from_clean(model: Any, layout: Layout, part: Any, run: CleanPass, ablated: torch.Tensor,
                       layer: int, chunk: list[int], where: list[torch.Tensor] | None = None,
                       metric: Metric = task_metric) -> torch.Tensor:
    """Summed metric ``[copies]`` with component ``chunk[c]`` (all in `layer`) patched in copy ``c``.

    Equal to a full patched pass, computed from what is left to compute: nothing before `layer`
    changes, the layer's attention reads an unchanged residual (a head's patch only swaps its
    output inside ``attn_out``), and the shared prefix enters later layers as cached keys and
    values, so each copy runs the layer's MLP and the later blocks on positions from ``run.start``.
    """
    s = run.start
    block = model.blocks[layer]
    resid, attn = run.resid[layer], run.attn_out[layer]
    mids: list[torch.Tensor] = []
    mlp_swaps: dict[int, torch.Tensor] = {}
    for c, src in enumerate(chunk):
        rel = (src - 1) % layout.block
        if rel < layout.n_heads:
            # The same arithmetic as `_replace_hooks`: attn_out + (ablated_h - z_h @ W_O[h]).
            delta = ablated[:, s:, src] - run.z[layer][:, :, rel] @ block.attn.W_O[rel]
            mids.append(resid + (attn + (delta if where is None else where[c][:, s:].unsqueeze(-1) * delta)))
        else:
            mids.append(resid + attn)
            clean_mlp = run.mlp_out[layer]
            mlp_swaps[c] = (ablated[:, s:, src] if where is None
                            else clean_mlp + where[c][:, s:].unsqueeze(-1) * (ablated[:, s:, src] - clean_mlp))
    mid = torch.cat(mids)
    if layout.has_mlp:
        b = resid.shape[0]
        heads = [c for c in range(len(chunk)) if c not in mlp_swaps]
        mlp = torch.empty_like(mid).view(len(chunk), b, *mid.shape[1:])
        if heads:
            rows = mid.view(len(chunk), b, *mid.shape[1:])[heads].flatten(0, 1)
            mlp[heads] = block.apply_mlp(block.ln2(rows)).view(len(heads), b, *mid.shape[1:])
        for c, value in mlp_swaps.items():
            mlp[c] = value
        post = mid + mlp.flatten(0, 1)
    else:
        post = mid
    logits = model(post, start_at_layer=layer + 1, past_kv_cache=_prefix_cache(run, len(chunk)))
    if s:
        logits = torch.cat([run.logits[:, :s].repeat(len(chunk), 1, 1), logits], dim=1)
    return metric_per_copy(part, logits, len(chunk), metric).sum(1).cpu()


def _patch_pass(model: Any, layout: Layout, part: Any, clean: torch.Tensor, run: CleanPass | None,
                ablated: torch.Tensor, layer: int, chunk: list[int], where: list[torch.Tensor] | None,
                metric: Metric) -> torch.Tensor:
    """Summed metric ``[copies]`` of one patched pass: from the clean run's cache when there is
    one, else a full forward pass of the repeated batch under patching hooks (the plain loop)."""
    if run is not None:
        return patched_from_clean(model, layout, part, run, ablated, layer, chunk, where, metric)
    hooks = _replace_hooks(model, layout, ablated, chunk, clean.shape[0], where)
    with model.hooks(fwd_hooks=hooks):
        logits = model(clean.repeat(len(chunk), 1))
    return metric_per_copy(part, logits, len(chunk), metric).sum(1).cpu()


#: Per batch: ``{column: [B, T] 0/1 mask}`` of the positions each score column patches
#: (`activation_patching_by_role`), given the batch's first row index and size.
Where = Callable[[int, int, torch.device, torch.dtype], dict[int, torch.Tensor]]


@torch.no_grad()
def patching_totals(model: Any, dataset: Any, ablation: Ablation, batch_size: int, label: str,
                    components_per_pass: int | None = None, max_rows: int = DEFAULT_MAX_ROWS,
                    share_prefix: bool = True, progress: Progress | None = None,
                    metric: Metric = task_metric, where: Where | None = None,
                    columns: int = 1) -> tuple[Layout, list[int], torch.Tensor]:
    """(layout, component sources, ``[components, columns]`` summed metric drops) of patching
    each component alone, over all positions or (with `where`) over each column's positions.

    Components of one layer share a pass as copies of the batch; with `share_prefix` the pass
    reuses the clean run (see `patched_from_clean`), otherwise it is the plain full pass.
    """
    with prepared(model, split_qkv=False) as layout:
        comps = components(layout)
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        totals = torch.zeros(len(comps), columns, dtype=torch.float64)
        n = n_examples(dataset)
        reuse = share_prefix and _can_start_midway(model) and _plain_blocks(model)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            b = clean.shape[0]
            ablated = ablator.values(clean, corrupt)
            masks = where(done, b, clean.device, ablated.dtype) if where is not None else None
            cols = sorted(masks) if masks is not None else [0]
            run = clean_pass(model, layout, part, clean, unchanged_prefix(clean, corrupt, ablation), metric) \
                if reuse else None
            base = run.base if run is not None else metric(part, model(clean)).to(torch.float64).sum().cpu()
            rows = max_rows_for(model, layout, clean.shape[1], max_rows)
            per_pass = components_per_pass or copies_per_pass(b, len(comps) * len(cols), rows)
            for layer in range(layout.n_layers):
                items = [(k, j) for k, src in enumerate(comps) if (src - 1) // layout.block == layer for j in cols]
                for first in range(0, len(items), per_pass):
                    chunk = items[first:first + per_pass]
                    srcs = [comps[k] for k, _ in chunk]
                    wh = [masks[j] for _, j in chunk] if masks is not None else None
                    patched = _patch_pass(model, layout, part, clean, run, ablated, layer, srcs, wh, metric)
                    for c, (k, j) in enumerate(chunk):
                        totals[k, j] += base - patched[c]
            done += b
            if progress:
                progress(label, done, n)
        return layout, comps, totals


def activation_patching(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                        batch_size: int = 32, components_per_pass: int | None = None,
                        max_rows: int = DEFAULT_MAX_ROWS, share_prefix: bool = True,
                        progress: Progress | None = None, metric: Metric = task_metric) -> dict[str, float]:
    """Score every head and MLP by patching its whole output; returns id -> score.

    Components of one layer share a forward pass (`components_per_pass` copies of the batch, by
    default as many as `max_rows` allows), and with `share_prefix` the pass reuses the clean run:
    it starts after the layer's attention, and positions no patch can change are not recomputed.
    Exact either way; ``components_per_pass=1, share_prefix=False`` is the plain
    one-component-per-pass loop.
    """
    layout, comps, totals = patching_totals(model, dataset, ablation, batch_size, "activation patching",
                                            components_per_pass, max_rows, share_prefix, progress, metric)
    n = n_examples(dataset)
    return {layout.sources[src]: float(totals[i, 0] / n) for i, src in enumerate(comps)}

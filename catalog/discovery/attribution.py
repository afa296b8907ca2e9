"""Edge attribution patching (EAP) and its integrated-gradients variant (EAP-IG).

For every edge u->v: ``score(u->v) = mean over examples of sum over positions of
(a_u,ablated - a_u,clean) . dL/d(input of v)`` with ``L = -metric`` (EAP-IG differentiates a
loss, so a positive score means patching the edge lowers the task metric: the edge helps). It is
the first-order estimate of what exact edge patching measures. Per batch EAP costs the
ablation run, one clean forward pass and one backward pass; the score matrix is filled by
gradient hooks on the split q/k/v, MLP and logits inputs, never by one pass per edge.

EAP-IG replaces the single gradient by the average of the gradients at ``steps`` points on the
straight line from the ablated to the clean input embeddings, alpha = 1/steps, ..., 1 (the
right Riemann sum EAP-IG uses). The activation differences stay those of the clean and ablated
runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from catalog.discovery.engine import (
    Ablator,
    Hook,
    Metric,
    Progress,
    batches,
    device_of,
    n_examples,
    new_buffer,
    prepared,
    source_hooks,
    task_metric,
)
from catalog.discovery.layout import QKV_ORDER, Layout
from catalog.errors import InvalidInputError
from catalog.naming import EMBED_HOOK, attn_hook, block_hook, logits_input_hook, qkv_input_hook
from catalog.provenance import Ablation


def _flat_diff(ablated: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """``ablated - clean`` as a contiguous ``[S, B*T*D]`` matrix, so that each destination's
    scores are one matrix product over a prefix of its rows."""
    b, t, s, d = clean.shape
    return (ablated - clean).permute(2, 0, 1, 3).reshape(s, b * t * d).contiguous()


def _accumulate(scores: torch.Tensor, flat: torch.Tensor, grad: torch.Tensor, upto: int, first: int,
                heads: int | None) -> None:
    """``scores[:upto, dest] += sum over (b, t, d) of diff[s] * grad`` for one destination group."""
    if heads is None:
        scores[:upto, first] += flat[:upto] @ grad.reshape(-1).to(flat.dtype)
    else:
        g = grad.permute(0, 1, 3, 2).reshape(-1, heads).to(flat.dtype)
        scores[:upto, first:first + heads] += flat[:upto] @ g


def _grad_hooks(layout: Layout, scores: torch.Tensor, diff: list[torch.Tensor]) -> list[Hook]:
    """Forward hooks that attach gradient hooks adding ``diff . grad`` into `scores`.

    ``diff[0]`` (``[S, B*T*D]``, ablated minus clean, see `_flat_diff`) is filled in after the
    forward pass and before the backward pass, when the gradient hooks fire.
    """

    def make(first: int, count: int, upto: int, heads: bool) -> Any:
        def on_grad(grad: torch.Tensor) -> None:
            _accumulate(scores, diff[0], grad, upto, first, count if heads else None)

        def hook(act: torch.Tensor, hook: Any) -> None:
            if act.requires_grad:
                act.register_hook(on_grad)

        return hook

    hooks: list[Hook] = []
    for layer in range(layout.n_layers):
        for qkv in QKV_ORDER:
            first = layout.head_dest(layer, qkv, 0)
            hooks.append((qkv_input_hook(layer, qkv),
                          make(first, layout.n_heads, layout.n_upstream(first), True)))
        if layout.has_mlp:
            d = layout.mlp_dest(layer)
            hooks.append((block_hook(layer, "mlp_in"), make(d, 1, layout.n_upstream(d), False)))
    d = layout.logits_dest
    hooks.append((logits_input_hook(layout.n_layers), make(d, 1, layout.n_upstream(d), False)))
    return hooks


#: Normalisations whose backward pass `_ln_backward` computes (TransformerLens's names).
_ANALYTIC_NORMS = ("LN", "LNPre", "RMS", "RMSPre", None)


def _analytic_ok(model: Any) -> bool:
    """Whether per-head q/k/v input gradients can be derived from a plain (unsplit) forward pass."""
    cfg = model.cfg
    return (cfg.normalization_type in _ANALYTIC_NORMS and not cfg.use_normalization_before_and_after
            and cfg.original_architecture not in ("BertForMaskedLM",) and not getattr(cfg, "use_qk_norm", False))


def _ln_stats(model: Any, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(xhat, scale)`` of ``blocks[layer].ln1`` at input `x` ``[B, T, D]``, each with a head axis
    added; None without normalisation. Computed once per layer, shared by q, k and v."""
    kind = model.cfg.normalization_type
    if kind is None:
        return None
    xc = x - x.mean(-1, keepdim=True) if kind in ("LN", "LNPre") else x
    scale = (xc.pow(2).mean(-1, keepdim=True) + model.blocks[layer].ln1.eps).sqrt()
    return (xc / scale).unsqueeze(2), scale.unsqueeze(2)


def _ln_backward(model: Any, layer: int, grad: torch.Tensor,
                 stats: tuple[torch.Tensor, torch.Tensor] | None, frozen_scale: bool = False) -> torch.Tensor:
    """Gradient w.r.t. the input of ``blocks[layer].ln1`` given the gradient of its output.

    `grad` is ``[B, T, H, D]`` (one row per head). LayerNorm: ``(g' - mean(g') - xhat *
    mean(g' xhat)) / scale`` with ``g' = g * w``; RMSNorm drops the centring term; no
    normalisation is the identity. With `frozen_scale` (LRP's LN-rule) the scale is a constant,
    so the ``xhat`` term, its derivative, drops out.
    """
    if stats is None:
        return grad
    xhat, scale = stats
    kind = model.cfg.normalization_type
    g = grad * model.blocks[layer].ln1.w if kind in ("LN", "RMS") else grad
    if kind in ("LN", "LNPre"):
        g = g - g.mean(-1, keepdim=True)
    if frozen_scale:
        return g / scale
    return (g - xhat * (g * xhat).mean(-1, keepdim=True)) / scale


def _analytic_grad_hooks(model: Any, layout: Layout, scores: torch.Tensor, diff: list[torch.Tensor],
                         frozen_scale: bool = False) -> list[Hook]:
    """Like `_grad_hooks`, without split q/k/v inputs: each head's q, k and v input gradient is
    ``LN1-backward(dL/dq_h @ W_Q[h]^T)``, taken from gradients at ``hook_q``/``hook_k``/``hook_v``.

    The plain forward pass is several times cheaper than TransformerLens's split-input one.
    """
    stats: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}
    hooks: list[Hook] = []

    def keep(layer: int) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> None:
            with torch.no_grad():
                stats[layer] = _ln_stats(model, layer, act.detach())

        return hook

    def make(layer: int, qkv: str) -> Any:
        first = layout.head_dest(layer, qkv, 0)
        upto = layout.n_upstream(first)
        weight = getattr(model.blocks[layer].attn, f"W_{qkv.upper()}")

        def on_grad(grad: torch.Tensor) -> None:
            g_in = _ln_backward(model, layer, torch.einsum("bthk,hdk->bthd", grad, weight), stats[layer],
                                frozen_scale)
            _accumulate(scores, diff[0], g_in, upto, first, layout.n_heads)

        def hook(act: torch.Tensor, hook: Any) -> None:
            if act.requires_grad:
                act.register_hook(on_grad)

        return hook

    for layer in range(layout.n_layers):
        hooks.append((block_hook(layer, "resid_pre"), keep(layer)))
        hooks += [(attn_hook(layer, qkv), make(layer, qkv)) for qkv in QKV_ORDER]
    mlp_and_logits = _grad_hooks(layout, scores, diff)
    return hooks + [h for h in mlp_and_logits if not h[0].endswith(("_q_input", "_k_input", "_v_input"))]


def _input_hook(alpha: float, baseline: torch.Tensor) -> Hook:
    """Replace the input embeddings by ``baseline + alpha (clean - baseline)``, a leaf needing grad."""

    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        x = act.detach() if alpha == 1.0 else baseline + alpha * (act.detach() - baseline)
        return x.requires_grad_(True)

    return (EMBED_HOOK, hook)


@dataclass(frozen=True)
class BackwardRules:
    """A modified backward pass: forward hooks that change gradients without changing values.

    `hooks(model)` returns the hooks (e.g. detaching a LayerNorm's scale); `frozen_norm_scale`
    says they freeze every normalisation's scale, so the analytic q/k/v input gradients must
    treat ``ln1``'s scale as a constant too.
    """

    hooks: Callable[[Any], list[Hook]]
    frozen_norm_scale: bool = False


def attribution_scores(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                       batch_size: int = 32, steps: int = 1, progress: Progress | None = None,
                       split_qkv: bool | None = None, metric: Metric = task_metric,
                       rules: BackwardRules | None = None) -> list[list[float]]:
    """Dense ``[source][destination]`` attribution scores; ``steps=1`` is EAP, more is EAP-IG.

    `split_qkv` (default: only when the normalisation has no analytic backward here) takes the
    q/k/v input gradients from TransformerLens's split inputs instead; both give the same scores.
    `rules` replaces plain gradients by the propagation coefficients of a modified backward
    pass (RelP's LRP rules); the forward values, and so the activation differences, are unchanged.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}.")
    split = not _analytic_ok(model) if split_qkv is None else split_qkv
    with prepared(model, split_qkv=split) as layout:
        dev = device_of(model)
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        scores = torch.zeros(layout.n_sources, layout.n_destinations, dtype=torch.float32, device=dev)
        # alpha = 1 first: that pass is the clean run whose source outputs the differences need.
        alphas = [1.0] + [k / steps for k in range(1, steps)]
        n = n_examples(dataset)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, dev):
            ablated = ablator.values(clean, corrupt)
            baseline = ablated[:, :, 0]
            diff: list[torch.Tensor] = []
            for alpha in alphas:
                hooks = [_input_hook(alpha, baseline)]
                buf = None
                if alpha == 1.0:
                    buf = new_buffer(model, layout, clean)
                    hooks += source_hooks(model, layout, buf)
                if rules is not None:
                    hooks += rules.hooks(model)
                hooks += (_grad_hooks(layout, scores, diff) if split
                          else _analytic_grad_hooks(model, layout, scores, diff,
                                                    rules is not None and rules.frozen_norm_scale))
                with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
                    loss = -metric(part, model(clean)).sum()
                    if buf is not None:
                        diff.append(_flat_diff(ablated, buf))
                    loss.backward()
            done += clean.shape[0]
            if progress:
                progress("attribution", done, n)
        return (scores.to(torch.float64) / (n * steps)).cpu().tolist()


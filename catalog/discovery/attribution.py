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
    # reshape copies only when the buffers are not source-major (`new_buffer`).
    return (ablated - clean).permute(2, 0, 1, 3).reshape(s, b * t * d).contiguous()


def _accumulate(scores: torch.Tensor, flat: torch.Tensor, grad: torch.Tensor, upto: int, first: int,
                heads: int | None) -> None:
    """``scores[:upto, dest] += sum over (b, t, d) of diff[s] * grad`` for one destination group."""
    if heads is None:
        scores[:upto, first] += flat[:upto] @ grad.reshape(-1).to(flat.dtype)
    else:
        g = grad.permute(0, 1, 3, 2).reshape(-1, heads).to(flat.dtype)
        scores[:upto, first:first + heads] += flat[:upto] @ g


def _on_grad(fn: Callable[[torch.Tensor], None]) -> Callable[..., None]:
    """A forward hook calling `fn` with the gradient of the activation it sees (when it has one)."""

    def hook(act: torch.Tensor, hook: Any) -> None:
        if act.requires_grad:
            act.register_hook(fn)

    return hook


def _grad_hooks(layout: Layout, scores: torch.Tensor, diff: list[torch.Tensor]) -> list[Hook]:
    """Forward hooks that attach gradient hooks adding ``diff . grad`` into `scores`.

    ``diff[0]`` (``[S, B*T*D]``, ablated minus clean, see `_flat_diff`) is filled in after the
    forward pass and before the backward pass, when the gradient hooks fire.
    """

    def make(first: int, count: int, upto: int, heads: bool) -> Any:
        def on_grad(grad: torch.Tensor) -> None:
            _accumulate(scores, diff[0], grad, upto, first, count if heads else None)

        return _on_grad(on_grad)

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


#: Normalisations whose backward pass `_analytic_grad_hooks` computes (TransformerLens's names).
_ANALYTIC_NORMS = ("LN", "LNPre", "RMS", "RMSPre", None)


def _analytic_ok(model: Any) -> bool:
    """Whether per-head q/k/v input gradients can be derived from a plain (unsplit) forward pass."""
    cfg = model.cfg
    return (cfg.normalization_type in _ANALYTIC_NORMS and not cfg.use_normalization_before_and_after
            and cfg.original_architecture not in ("BertForMaskedLM",) and not getattr(cfg, "use_qk_norm", False)
            and cfg.n_key_value_heads is None)


def _ln_stats(model: Any, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(xhat [B*T, D], scale [B*T, 1])`` of ``blocks[layer].ln1`` at input `x` ``[B, T, D]``;
    None without normalisation. Computed once per layer, shared by q, k and v."""
    kind = model.cfg.normalization_type
    if kind is None:
        return None
    x = x.flatten(0, 1)
    xc = x - x.mean(-1, keepdim=True) if kind in ("LN", "LNPre") else x
    scale = (xc.pow(2).mean(-1, keepdim=True) + model.blocks[layer].ln1.eps).sqrt()
    return xc / scale, scale


def _folded_weights(model: Any, layer: int) -> torch.Tensor:
    """``[3H, d_head, D]``: W_Q, W_K and W_V of `layer`, transposed, with ``ln1``'s linear part
    folded in.

    LN1's backward starts with ``g' = g * w`` and (LayerNorm) centres ``g'``; both are linear in
    ``g = dL/dq_h @ W_Q[h]^T``, so scaling W's rows by ``w`` and centring its columns over D gives
    the centred ``g'`` in one batched product for all heads of q, k and v.
    """
    attn, kind = model.blocks[layer].attn, model.cfg.normalization_type
    w = torch.cat([attn.W_Q, attn.W_K, attn.W_V])
    if kind in ("LN", "RMS"):
        w = w * model.blocks[layer].ln1.w[None, :, None]
    if kind in ("LN", "LNPre"):
        w = w - w.mean(1, keepdim=True)
    return w.transpose(1, 2).contiguous()


def _analytic_grad_hooks(model: Any, layout: Layout, scores: torch.Tensor, diff: list[torch.Tensor],
                         frozen_scale: bool = False) -> list[Hook]:
    """Like `_grad_hooks`, without split q/k/v inputs: each head's q, k and v input gradient is
    ``LN1-backward(dL/dq_h @ W_Q[h]^T)``, taken from gradients at ``hook_q``/``hook_k``/``hook_v``.

    The plain forward pass is several times cheaper than TransformerLens's split-input one. A
    layer's q, k and v gradients are held until the layer input's gradient is complete and then
    go through one product, one LayerNorm backward and one product with the differences (their
    destinations are adjacent and have the same upstream sources).
    """
    stats: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}
    pending: dict[int, dict[str, torch.Tensor]] = {}
    heads = layout.n_heads
    folded = {layer: _folded_weights(model, layer) for layer in range(layout.n_layers)}

    def keep(layer: int) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> None:
            with torch.no_grad():
                stats[layer] = _ln_stats(model, layer, act.detach())
            if act.requires_grad:
                # The layer input's gradient is complete only after every q, k and v gradient of
                # the layer has arrived (a rule that freezes attention patterns sends none to q, k).
                act.register_hook(lambda grad: flush(layer) if layer in pending else None)

        return hook

    def flush(layer: int) -> None:
        # Head-major throughout: [3H, B*T, D] is contiguous for the LayerNorm backward and, read
        # as [3H, B*T*D], is the transposed right operand of the product with the differences.
        grads = pending.pop(layer)
        some = next(iter(grads.values()))
        gq = torch.cat([grads[x] if x in grads else torch.zeros_like(some) for x in QKV_ORDER], dim=2)
        gq = gq.flatten(0, 1).transpose(0, 1)  # [3H, B*T, d_head]
        st = stats[layer]
        if st is None:
            g = torch.bmm(gq, folded[layer])
        else:
            # Both terms are linear in g, so dividing by the scale first works on d_head, not D.
            xhat, scale = st
            g = torch.bmm(gq / scale, folded[layer])
            if not frozen_scale:
                m = torch.einsum("hnd,nd->hn", g, xhat).unsqueeze(-1) / xhat.shape[-1]
                g.addcmul_(xhat, m, value=-1)
        first = layout.head_dest(layer, QKV_ORDER[0], 0)
        upto = layout.n_upstream(first)
        scores[:upto, first:first + 3 * heads] += diff[0][:upto] @ g.reshape(3 * heads, -1).T.to(diff[0].dtype)

    def make(layer: int, qkv: str) -> Any:
        def on_grad(grad: torch.Tensor) -> None:
            pending.setdefault(layer, {})[qkv] = grad

        return _on_grad(on_grad)

    hooks: list[Hook] = []
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
            # Source-major buffers make the differences' [S, B*T*D] matrix a view (`_flat_diff`).
            ablated = ablator.values(clean, corrupt, source_major=True)
            baseline = ablated[:, :, 0]
            diff: list[torch.Tensor] = []
            for alpha in alphas:
                hooks = [_input_hook(alpha, baseline)]
                buf = None
                if alpha == 1.0:
                    buf = new_buffer(model, layout, clean, source_major=True)
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


"""RelP, relevance patching (Rezaei Jafari, Eberle, Khakzar and Nanda 2025).

RelP is attribution patching with the local gradients replaced by the propagation coefficients
of layer-wise relevance propagation (LRP): ``score(u->v) = sum (a_u,ablated - a_u,clean) .
c(input of v)``, where ``c`` is what a backward pass computes once these rules change it:

- **LN-rule** (Ali et al. 2022): every LayerNorm/RMSNorm scale (the standard deviation it divides
  by) is a constant in the backward pass; the centring and the affine map stay linear.
- **Identity rule** through each MLP's elementwise nonlinearity (GELU, ...): relevance passes
  through as if ``act(x) = x * (act(x)/x)`` with the ratio held constant, so the coefficient is
  ``act(x)/x`` instead of ``act'(x)``.
- **0-rule** for linear maps (embeddings, W_Q/W_K/W_V/W_O, W_in/W_out, the unembedding): the
  plain gradient, so nothing changes there.
- **AH-rule** (Ali et al. 2022) for attention: the attention pattern is a constant, so relevance
  reaches a head's input only through its values. Edges into q and k inputs therefore score 0.
- **Half-rule** for products of two activations (the gate of a gated MLP): each factor gets
  half the gradient, ``y = a*b`` backpropagating ``b/2`` to ``a`` and ``a/2`` to ``b``.

Each rule is a forward hook that returns the same value, bit for bit, with a changed gradient
(detached factors), so RelP costs what EAP costs: the ablation pass, one forward and one backward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.attribution import BackwardRules, attribution_scores
from catalog.discovery.contract import EdgeScores, MethodInputs
from catalog.discovery.engine import Hook
from catalog.errors import DiscoveryError
from catalog.naming import FINAL_NORM_SCALE_HOOK, attn_hook, block_hook

#: Added to |x| where x is (almost) 0 in the identity rule's ratio ``act(x)/x``, with x's sign.
_STABILISER = 1e-6


def _detach(act: torch.Tensor, hook: Any) -> torch.Tensor:
    return act.detach()


def _identity_ratio(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """``post / pre`` with a stabilised denominator (``act(x)/x`` tends to act'(0) near 0)."""
    sign = torch.where(pre >= 0, 1.0, -1.0).to(pre.dtype)
    denom = torch.where(pre.abs() < _STABILISER, sign * _STABILISER, pre)
    return post / denom


def _with_gradient(value: torch.Tensor, *factors: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """`value` unchanged in the forward pass, with gradient ``coef * upstream`` to each ``x`` of
    `factors` ``(x, coef)`` in the backward pass (the coefficients are constants)."""
    out = value.detach()
    for x, coef in factors:
        out = out + (x - x.detach()) * coef.detach()
    return out


def _mlp_hooks(model: Any, layer: int) -> list[Hook]:
    """Identity rule on the activation, and the half-rule on a gated MLP's product."""
    seen: dict[str, torch.Tensor] = {}
    mlp = model.blocks[layer].mlp
    gated = bool(getattr(model.cfg, "gated_mlp", False))

    def keep(name: str) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> None:
            seen[name] = act

        return hook

    def relevance(post: torch.Tensor, hook: Any) -> torch.Tensor:
        pre = seen["pre"]
        if not gated:  # post = act(pre)
            return _with_gradient(post, (pre, _identity_ratio(pre.detach(), post.detach())))
        # post = act(pre) * pre_linear: identity rule on act, then half of the product to each factor
        lin = seen["pre_linear"]
        act = mlp.act_fn(pre.detach())
        return _with_gradient(post, (pre, 0.5 * _identity_ratio(pre.detach(), act) * lin),
                              (lin, 0.5 * act))

    hooks: list[Hook] = [(block_hook(layer, "mlp.pre"), keep("pre"))]
    if gated:
        hooks.append((block_hook(layer, "mlp.pre_linear"), keep("pre_linear")))
    return hooks + [(block_hook(layer, "mlp.post"), relevance)]


def relevance_hooks(model: Any) -> list[Hook]:
    """The forward hooks that turn a backward pass into RelP's relevance propagation."""
    cfg = model.cfg
    if getattr(cfg, "act_fn", None) in ("solu_ln",):
        raise DiscoveryError("RelP has no rule for SoLU with its inner LayerNorm (act_fn solu_ln).")
    hooks: list[Hook] = []
    norms = [] if cfg.normalization_type is None else ["ln1"] + ([] if cfg.attn_only else ["ln2"])
    for layer in range(cfg.n_layers):
        hooks += [(block_hook(layer, f"{ln}.scale"), _detach) for ln in norms]
        hooks.append((attn_hook(layer, "pattern"), _detach))
        if not cfg.attn_only:
            hooks += _mlp_hooks(model, layer)
    if cfg.normalization_type is not None:
        hooks.append((FINAL_NORM_SCALE_HOOK, _detach))
    return hooks


RELP_RULES = BackwardRules(relevance_hooks, frozen_norm_scale=True)


def run(inputs: MethodInputs) -> EdgeScores:
    """The `Method` entry point: every edge's relevance-patching score."""
    return EdgeScores(attribution_scores(inputs.model, inputs.dataset, inputs.ablation, inputs.batch_size,
                                         steps=1, progress=inputs.progress, metric=inputs.metric,
                                         rules=RELP_RULES))

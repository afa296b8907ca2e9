"""Which attention heads write to and read from a transcoder feature, in one prompt's frozen local
replacement model (the model `catalog.transcoders.attribution` builds its graph in).

Both measures are exact direct effects in that linear model, one hop on each side of the feature
(layer ``L``, position ``p``, index ``i``, activation ``a``):

* **writes**: head ``h`` of layer ``l <= L`` writes ``out_h`` into the residual stream; its direct
  contribution to the feature's pre-activation is ``out_h[p] . dpre/dresid``, the frozen
  normalisation's gradient of ``x @ W_enc[:, i]`` at ``p``. Over every head, plus the embeddings,
  earlier MLP outputs (features and errors), attention's output bias and ``b_enc``, these sum to
  the pre-activation.
* **reads**: the feature writes ``a * W_dec[i]`` at ``p``; its direct effect on the target logit
  (the attribution graph's feature -> logit edge) splits exactly by the *first* attention head it
  passes through: head ``h`` of layer ``l > L`` takes ``(a * W_dec[i]) . J_h^T g_{l+1}``, where
  ``g_{l+1}`` is the target's gradient with respect to the stream after layer ``l`` and ``J_h``
  the head's frozen value-output map. What is left (``direct``) reaches the logit along the
  residual stream alone, which only a feature at the read position can. So the heads' reads plus
  ``direct`` equal the edge.

Writes are in units of the pre-activation, reads in units of the target logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from catalog.errors import DiscoveryError
from catalog.transcoders.attribution import _check_model, _host, _Weights, freeze, replacement_forward
from catalog.transcoders.model import TranscoderSet


@dataclass(frozen=True)
class FeatureLinks:
    """One active feature's links with the heads of one prompt: ``writes`` and ``reads``
    [n_layers, n_heads] (0 where a head cannot write or read it), ``direct`` the rest of its
    edge to the target, ``edge`` that edge, ``pre`` its pre-activation, ``activation`` its value."""

    feature: tuple[int, int, int]
    activation: float
    pre: float
    writes: torch.Tensor
    reads: torch.Tensor
    direct: float
    edge: float


def _head_outputs(w: _Weights, layer: int, resid: torch.Tensor, pattern: torch.Tensor,
                  scale: torch.Tensor) -> torch.Tensor:
    """What each head writes at each position: ``[H, T, d]`` (its share of `_Weights.attention`
    without the layer's output bias ``b_O``)."""
    lw, lb = w.ln1[layer]
    v = torch.einsum("kd,hde->hke", w.norm(resid, scale) * lw + lb, w.W_V[layer]) + w.b_V[layer][:, None]
    z = torch.einsum("hqk,hke->hqe", pattern, v)
    return torch.einsum("hqe,hed->hqd", z, w.W_O[layer])


def head_links(model: Any, transcoders: TranscoderSet, tokens: torch.Tensor, position: int,
               direction: torch.Tensor, features: Sequence[tuple[int, int, int]]) -> list[FeatureLinks]:
    """The writes and reads of every head for each of `features` ((layer, position, index); only
    those active in this prompt are returned), with the target logit ``direction`` [V] read at
    `position` (see the module docstring)."""
    _check_model(model, transcoders)
    if not 0 <= position < tokens.shape[0]:
        raise DiscoveryError(f"Read position {position} is outside the prompt's {tokens.shape[0]} tokens.")
    tokens = tokens[:position + 1]
    state = freeze(model, tokens)
    w = _Weights(model, transcoders)
    run = replacement_forward(w, state)
    direction = _host(direction)
    n_layers = len(w.tc)
    outs = [_head_outputs(w, layer, run["resid"][layer], state.patterns[layer], state.ln1[layer])
            for layer in range(n_layers)]
    # g[l]: the target's gradient with respect to the stream before layer l's attention; g[n] at the end
    wf, _ = w.ln_final
    g = [torch.zeros_like(state.embed) for _ in range(n_layers + 1)]
    g[n_layers][position] = w.norm_grad((w.W_U @ direction) * wf, state.ln_final[position])
    back: list[torch.Tensor] = [torch.empty(0)] * n_layers  # per-head shares of attention_backward(g[l + 1]) [H, T, d]
    for layer in range(n_layers - 1, -1, -1):
        back[layer] = w.attention_backward(layer, g[layer + 1][None], state.patterns[layer], state.ln1[layer],
                                           per_head=True)[0]
        g[layer] = g[layer + 1] + back[layer].sum(0)
    n_heads = outs[0].shape[0]
    found = []
    for layer, p, i in features:
        if not 0 <= p < len(state.tokens) or float(run["acts"][layer][p, i]) <= 0:
            continue
        tc = w.tc[layer]
        read_in = w.norm_grad(tc.W_enc[:, i], state.ln2[layer, p])
        writes = torch.zeros(n_layers, n_heads, dtype=torch.float64)
        reads = torch.zeros(n_layers, n_heads, dtype=torch.float64)
        for lay in range(layer + 1):
            writes[lay] = outs[lay][:, p] @ read_in
        write = run["acts"][layer][p, i] * tc.W_dec[i]
        for lay in range(layer + 1, n_layers):
            reads[lay] = back[lay][:, p] @ write
        found.append(FeatureLinks(feature=(layer, p, i), activation=float(run["acts"][layer][p, i]),
                                  pre=float(run["pre"][layer][p, i]), writes=writes, reads=reads,
                                  direct=float(g[n_layers][p] @ write), edge=float(g[layer + 1][p] @ write)))
    return found

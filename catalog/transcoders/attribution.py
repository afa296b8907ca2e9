"""Attribution graphs for one prompt through the local replacement model (Ameisen et al. 2025).

The *local replacement model* of a prompt is the real model with, from its own forward pass on
that prompt:

* every attention pattern and every normalisation scale (the standard deviation a LayerNorm
  divides by) frozen at its value;
* every MLP replaced by its transcoder's active features, each writing ``activation * W_dec[i]``,
  plus the transcoder's decoder bias, plus an **error node** per (layer, position) holding what
  the transcoder misses there (``real MLP output - transcoder output``).

Given the active features' activations, that model is linear in the residual stream, and with the
error nodes it reproduces the real model's logits exactly. Every *target* (an active feature's
pre-activation ``x @ W_enc + b_enc``, and the target logit) is then exactly the sum of direct
contributions from the *sources* (token + position embeddings per position, active features,
error nodes) plus the biases (attention's value and output biases, normalisation offsets,
decoder and encoder biases, the unembedding bias). The direct contribution (edge weight) of a
source into a target is the gradient of the target with respect to the residual stream at the
source's write position, dotted with what the source writes. The gradients are computed by one
batched backward sweep through the frozen linear model, all targets at once; nothing flows
through MLPs (their outputs are constants and frozen feature activations) or through attention
patterns (frozen), only along the residual stream and attention's value-output paths.

The target logit is a direction in logit space at the read position: for a task, the gradient of
its metric with respect to the logits there (the logit difference ``answer - wrong answer`` for
the built-in tasks, exactly; a first-order reading of a non-linear metric); for a bare prompt, the
top logit.

All of it is computed in float64, from the real forward pass's cached patterns, scales and MLP
outputs, so the sums hold to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from catalog.errors import DiscoveryError
from catalog.naming import FINAL_NORM_SCALE_HOOK, attn_hook, block_hook
from catalog.transcoders.model import Transcoder, TranscoderSet, output_hook

#: Targets handled per backward sweep (bounds memory: rows x positions x d_model floats).
CHUNK = 512


@dataclass(frozen=True)
class FrozenState:
    """What the real forward pass froze, for one prompt of ``T`` tokens (float64 tensors).

    ``ln1``/``ln2`` [n_layers, T] and ``ln_final`` [T]: the normalisation scales; ``patterns``
    [n_layers, heads, T, T]; ``mlp_out`` [n_layers, T, d]: the real MLP outputs; ``embed`` [T, d]:
    token + position embeddings.
    """

    tokens: tuple[int, ...]
    ln1: torch.Tensor
    ln2: torch.Tensor
    ln_final: torch.Tensor
    patterns: torch.Tensor
    mlp_out: torch.Tensor
    embed: torch.Tensor
    real_logits: torch.Tensor


@dataclass(frozen=True)
class Attribution:
    """One prompt's full (unpruned) attribution graph, dense.

    Nodes are numbered: the ``T`` input positions, then the ``features`` (``(layer, position,
    index)``, with ``activations``), then the error nodes (``(layer, position)`` in layer-major
    order), then the target logit. ``adjacency[t, s]`` is the direct contribution of node ``s``
    to node ``t`` (rows only for features and the logit are non-zero). ``bias[t]`` is the total
    bias contribution into ``t`` and ``values[t]`` its value (a feature's pre-activation, the
    target logit), so ``values == adjacency.sum(1) + bias`` on the target rows.
    """

    tokens: tuple[int, ...]
    position: int
    direction: torch.Tensor
    features: tuple[tuple[int, int, int], ...]
    activations: torch.Tensor
    errors: tuple[tuple[int, int], ...]
    error_norms: torch.Tensor
    adjacency: torch.Tensor
    bias: torch.Tensor
    values: torch.Tensor
    replacement_logits: torch.Tensor
    real_logits: torch.Tensor

    @property
    def n_inputs(self) -> int:
        return len(self.tokens)

    @property
    def n_nodes(self) -> int:
        return self.n_inputs + len(self.features) + len(self.errors) + 1

    @property
    def logit_index(self) -> int:
        return self.n_nodes - 1

    def feature_index(self, i: int) -> int:
        """Node number of the i-th feature."""
        return self.n_inputs + i

    def error_index(self, i: int) -> int:
        return self.n_inputs + len(self.features) + i

    def kind(self, node: int) -> str:
        """``input``, ``feature``, ``error`` or ``logit``."""
        if node < self.n_inputs:
            return "input"
        if node < self.n_inputs + len(self.features):
            return "feature"
        return "error" if node < self.logit_index else "logit"


# --- the frozen linear model ----------------------------------------------------------------------


def _host(t: torch.Tensor) -> torch.Tensor:
    """A copy of a model tensor for the frozen linear model, which runs in float64 on the CPU
    wherever the model sits (CUDA by default): the transcoders load there, and one prompt's
    float64 algebra does not need the accelerator."""
    return t.detach().to("cpu", torch.float64)


def _check_model(model: Any, transcoders: TranscoderSet) -> None:
    cfg = model.cfg
    if cfg.attn_only:
        raise DiscoveryError("An attention-only model has no MLPs for transcoders to replace.")
    if getattr(cfg, "parallel_attn_mlp", False):
        raise DiscoveryError("Attribution graphs need attention before each MLP; this model runs them in parallel.")
    if cfg.normalization_type not in ("LN", "LNPre", "RMS", "RMSPre"):
        raise DiscoveryError(f"Attribution graphs need LayerNorm or RMSNorm (got {cfg.normalization_type}).")
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        raise DiscoveryError(f"Attribution graphs do not handle {cfg.positional_embedding_type} position embeddings.")
    if len(transcoders.layers) != cfg.n_layers or transcoders.layers[0].d_model != cfg.d_model:
        raise DiscoveryError(
            f"The transcoder set ({len(transcoders.layers)} layers, d_model {transcoders.layers[0].d_model}) does "
            f"not fit the model ({cfg.n_layers} layers, d_model {cfg.d_model}); pass the set trained for it.")


def freeze(model: Any, tokens: torch.Tensor) -> FrozenState:
    """Run the real model once on ``tokens`` [T] and keep what the local replacement model freezes."""
    cfg = model.cfg
    names = {FINAL_NORM_SCALE_HOOK, "hook_embed", "hook_pos_embed"}
    for layer in range(cfg.n_layers):
        names |= {block_hook(layer, "ln1.scale"), block_hook(layer, "ln2.scale"), attn_hook(layer, "pattern"),
                  output_hook(layer)}
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n in names)

    def get(name: str) -> torch.Tensor:
        return _host(cache[name][0])

    t = tokens.shape[0]

    def scale(name: str) -> torch.Tensor:
        """A normalisation's frozen scale per position (1 where the model has no normalisation)."""
        return get(name)[:, 0] if name in cache else torch.ones(t, dtype=torch.float64)

    n = cfg.n_layers
    embed = get("hook_embed")
    if "hook_pos_embed" in cache:
        embed = embed + get("hook_pos_embed")
    return FrozenState(
        tokens=tuple(int(x) for x in tokens.tolist()),
        ln1=torch.stack([scale(block_hook(layer, "ln1.scale")) for layer in range(n)]),
        ln2=torch.stack([scale(block_hook(layer, "ln2.scale")) for layer in range(n)]),
        ln_final=scale(FINAL_NORM_SCALE_HOOK),
        patterns=torch.stack([get(attn_hook(layer, "pattern")) for layer in range(n)]),
        mlp_out=torch.stack([get(output_hook(layer)) for layer in range(n)]),
        embed=embed,
        real_logits=_host(logits[0]),
    )


class _Weights:
    """The model's and transcoders' weights the frozen linear model uses, in float64."""

    def __init__(self, model: Any, transcoders: TranscoderSet) -> None:
        cfg = model.cfg
        self.center = cfg.normalization_type in ("LN", "LNPre")

        def affine(ln: Any, d: int) -> tuple[torch.Tensor, torch.Tensor]:
            w = getattr(ln, "w", None)
            b = getattr(ln, "b", None)
            return (torch.ones(d, dtype=torch.float64) if w is None else _host(w),
                    torch.zeros(d, dtype=torch.float64) if b is None else _host(b))

        d = cfg.d_model
        self.ln1 = [affine(block.ln1, d) for block in model.blocks]
        self.ln_final = affine(model.ln_final, d)
        self.W_V = [_host(block.attn.W_V) for block in model.blocks]  # [H, d, dh]
        self.b_V = [_host(block.attn.b_V) for block in model.blocks]  # [H, dh]
        self.W_O = [_host(block.attn.W_O) for block in model.blocks]  # [H, dh, d]
        self.b_O = [_host(block.attn.b_O) for block in model.blocks]  # [d]
        self.W_U = _host(model.W_U)
        self.b_U = _host(model.b_U)
        self.tc = [_double(tc) for tc in transcoders.layers]

    def norm(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The frozen normalisation (before its affine map): ``(x - mean) / scale``."""
        if self.center:
            x = x - x.mean(-1, keepdim=True)
        out: torch.Tensor = x / scale[..., None]
        return out

    def norm_grad(self, g: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Backward of `norm` (the centring is symmetric): ``center(g) / scale``."""
        if self.center:
            g = g - g.mean(-1, keepdim=True)
        out: torch.Tensor = g / scale[..., None]
        return out

    def attention(self, layer: int, x: torch.Tensor, pattern: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Attention's output with its pattern and normalisation frozen: ``[T, d]`` from ``[T, d]``."""
        w, b = self.ln1[layer]
        v = torch.einsum("kd,hde->khe", self.norm(x, scale) * w + b, self.W_V[layer]) + self.b_V[layer]
        z = torch.einsum("hqk,khe->qhe", pattern, v)
        return torch.einsum("qhe,hed->qd", z, self.W_O[layer]) + self.b_O[layer]

    def attention_bias(self, layer: int, pattern: torch.Tensor) -> torch.Tensor:
        """What attention writes at each position from its biases alone (the ln offset through
        W_V, b_V, b_O): ``[T, d]``; rows of a pattern sum to 1."""
        _, b = self.ln1[layer]
        v = torch.einsum("d,hde->he", b, self.W_V[layer]) + self.b_V[layer]  # same at every key
        z = torch.einsum("hqk,he->qhe", pattern, v)
        return torch.einsum("qhe,hed->qd", z, self.W_O[layer]) + self.b_O[layer]

    def attention_backward(self, layer: int, g: torch.Tensor, pattern: torch.Tensor,
                           scale: torch.Tensor) -> torch.Tensor:
        """Gradient at attention's input from ``g`` [R, T, d] at its output (OV path only)."""
        w, _ = self.ln1[layer]
        a = torch.einsum("rqd,hed->rhqe", g, self.W_O[layer])
        a = torch.einsum("hqk,rhqe->rhke", pattern, a)
        x = torch.einsum("rhke,hde->rkd", a, self.W_V[layer])
        return self.norm_grad(x * w, scale)


def _double(tc: Transcoder) -> Transcoder:
    out = Transcoder(tc.d_model, tc.n_features, tc.k, tc.activation)
    out.load_state_dict({k: _host(v) for k, v in tc.state_dict().items()})
    return out.double().requires_grad_(False)


def replacement_forward(weights: _Weights, state: FrozenState,
                        frozen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The local replacement model's forward pass in float64.

    Returns the per-layer residual stream before attention ``resid`` and transcoder inputs ``x``
    [T, d], pre-activations ``pre`` and activations ``acts`` [T, n_features], error vectors
    ``errors`` [T, d], and ``logits`` [T, V]. With
    `frozen` (a previous result, its ``acts`` possibly edited), the features keep those
    activations (nothing is re-encoded) and the error nodes their values: the frozen model whose
    direct effects the attribution graph holds.
    """
    resid = state.embed.clone()
    out: dict[str, Any] = {"x": [], "pre": [], "acts": [], "errors": [], "resid": []}
    for layer, tc in enumerate(weights.tc):
        out["resid"].append(resid)
        resid = resid + weights.attention(layer, resid, state.patterns[layer], state.ln1[layer])
        x = weights.norm(resid, state.ln2[layer])
        pre = tc.pre_activations(x)
        if frozen is None:
            acts = tc.sparsify(pre)
            error = state.mlp_out[layer] - tc.decode(acts)  # what the transcoder misses in the real pass
        else:
            acts, error = frozen["acts"][layer], frozen["errors"][layer]
        out["x"].append(x)
        out["pre"].append(pre)
        out["acts"].append(acts)
        out["errors"].append(error)
        resid = resid + tc.decode(acts) + error
    w, b = weights.ln_final
    out["logits"] = (weights.norm(resid, state.ln_final) * w + b) @ weights.W_U + weights.b_U
    return out


# --- attribution ----------------------------------------------------------------------------------


def attribute(model: Any, transcoders: TranscoderSet, tokens: torch.Tensor, position: int | None = None,
              direction: torch.Tensor | None = None) -> Attribution:
    """The full attribution graph of one prompt.

    `tokens` [T] (BOS first); `position` the read position (default the last; later tokens are
    dropped, causality makes them irrelevant); `direction` [V] the target logit as a direction in
    logit space (default: the top logit at `position`).
    """
    _check_model(model, transcoders)
    t = tokens.shape[0] if position is None else position + 1
    if not 1 <= t <= tokens.shape[0]:
        raise DiscoveryError(f"Read position {position} is outside the prompt's {tokens.shape[0]} tokens.")
    tokens = tokens[:t]
    position = t - 1
    state = freeze(model, tokens)
    weights = _Weights(model, transcoders)
    run = replacement_forward(weights, state)
    if direction is None:
        direction = torch.zeros(model.cfg.d_vocab, dtype=torch.float64)
        direction[int(state.real_logits[position].argmax())] = 1.0
    direction = _host(direction)

    features = [(layer, int(p), int(i)) for layer, acts in enumerate(run["acts"])
                for p, i in torch.nonzero(acts > 0).tolist()]
    activations = torch.tensor([float(run["acts"][lay][p, i]) for lay, p, i in features], dtype=torch.float64)
    n_layers = len(weights.tc)
    errors = [(layer, p) for layer in range(n_layers) for p in range(t)]
    error_vecs = torch.stack(run["errors"])  # [n_layers, T, d]
    n_in, n_f, n_e = t, len(features), len(errors)
    n = n_in + n_f + n_e + 1
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    bias = torch.zeros(n, dtype=torch.float64)
    values = torch.zeros(n, dtype=torch.float64)
    for row, (lay, p, i) in enumerate(features):
        values[n_in + row] = run["pre"][lay][p, i]
    values[-1] = run["logits"][position] @ direction

    targets = list(range(n_in, n_in + n_f)) + [n - 1]
    for first in range(0, len(targets), CHUNK):
        rows = targets[first:first + CHUNK]
        adj, b = _backward(weights, state, run, features, activations, error_vecs, direction, position, rows, n_in)
        adjacency[rows, :n_in + n_f + n_e] = adj
        bias[rows] = b
    return Attribution(tokens=state.tokens, position=position, direction=direction, features=tuple(features),
                       activations=activations, errors=tuple(errors),
                       error_norms=error_vecs.reshape(-1, error_vecs.shape[-1]).norm(dim=-1), adjacency=adjacency,
                       bias=bias, values=values, replacement_logits=run["logits"], real_logits=state.real_logits)


def _backward(weights: _Weights, state: FrozenState, run: dict[str, Any], features: list[tuple[int, int, int]],
              activations: torch.Tensor, error_vecs: torch.Tensor, direction: torch.Tensor, position: int,
              rows: list[int], n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct contributions into the target nodes `rows` from every source, and their bias totals.

    One sweep from the last layer down: ``g`` [R, T, d] is each target's gradient with respect to
    the residual stream after the current layer. A layer's features and errors, written there, are
    read off it; then the layer's own targets are seeded (they read the stream before this layer's
    MLP writes), attention's bias write is read off, and ``g`` goes back through attention.
    """
    n_layers, t, d = error_vecs.shape
    n_f = len(features)
    r = len(rows)
    logit_row = n_in + n_f + n_layers * t  # the last node
    g = torch.zeros(r, t, d, dtype=torch.float64)
    out = torch.zeros(r, n_in + n_f + n_layers * t, dtype=torch.float64)
    bias = torch.zeros(r, dtype=torch.float64)
    by_layer: dict[int, list[int]] = {}
    for j, (lay, _, _) in enumerate(features):
        by_layer.setdefault(lay, []).append(j)
    target_of = {row: k for k, row in enumerate(rows)}
    if logit_row in target_of:
        k = target_of[logit_row]
        wf, bf = weights.ln_final
        u = weights.W_U @ direction
        g[k, position] = weights.norm_grad(u * wf, state.ln_final[position])
        bias[k] += bf @ u + weights.b_U @ direction
    for layer in range(n_layers - 1, -1, -1):
        tc = weights.tc[layer]
        js = by_layer.get(layer, [])
        if js:  # sources: this layer's active features, each writing activation * W_dec[i] at its position
            pos = torch.tensor([features[j][1] for j in js])
            idx = torch.tensor([features[j][2] for j in js])
            writes = activations[js][:, None] * tc.W_dec[idx]  # [F_l, d]
            out[:, [n_in + j for j in js]] = torch.einsum("rfd,fd->rf", g[:, pos], writes)
        first_err = n_in + n_f + layer * t
        out[:, first_err:first_err + t] = torch.einsum("rtd,td->rt", g, error_vecs[layer])
        bias += torch.einsum("rtd,d->r", g, tc.b_dec)
        for j in js:  # this layer's targets read the stream before its MLP
            row = target_of.get(n_in + j)
            if row is None:
                continue
            _, p, i = features[j]
            g[row, p] += weights.norm_grad(tc.W_enc[:, i], state.ln2[layer, p])
            bias[row] += tc.b_enc[i]
        bias += torch.einsum("rtd,td->r", g, weights.attention_bias(layer, state.patterns[layer]))
        g = g + weights.attention_backward(layer, g, state.patterns[layer], state.ln1[layer])
    out[:, :n_in] = torch.einsum("rtd,td->rt", g, state.embed)
    return out, bias

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
source's write position, dotted with what the source writes. The gradients are computed by
batched backward sweeps through the frozen linear model, a layer's targets at a time; nothing flows
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

from catalog.errors import DiscoveryError, InvalidInputError
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

    ``n_active`` counts the prompt's active features. With a feature cap (`attribute`'s
    `max_feature_nodes`) ``features`` holds only the ones visited, and a row's sum misses what the
    others sent it: ``values - adjacency.sum(1) - bias`` is their share.
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
    n_active: int

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
                           scale: torch.Tensor, per_head: bool = False) -> torch.Tensor:
        """Gradient at attention's input from ``g`` [R, T, d] at its output (OV path only):
        [R, T, d], or each head's share of it, [R, H, T, d], with `per_head`."""
        w, _ = self.ln1[layer]
        a = torch.einsum("rqd,hed->rhqe", g, self.W_O[layer])
        a = torch.einsum("hqk,rhqe->rhke", pattern, a)
        x = torch.einsum("rhke,hde->rhkd" if per_head else "rhke,hde->rkd", a, self.W_V[layer])
        return self.norm_grad(x * w, scale)

    def attention_backward_from(self, layer: int, g: torch.Tensor, positions: torch.Tensor, pattern: torch.Tensor,
                                scale: torch.Tensor) -> torch.Tensor:
        """`attention_backward` of gradients each at one position: ``g`` [R, d] at ``positions``
        [R] of attention's output gives [R, T, d] at its input (T: the pattern's key positions),
        without the products over the other, zero, query positions."""
        w, _ = self.ln1[layer]
        a = torch.einsum("rd,hed->rhe", g, self.W_O[layer])
        a = torch.einsum("rhe,hde->rhd", a, self.W_V[layer])
        x = torch.einsum("hrk,rhd->rkd", pattern[:, positions], a)
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


@dataclass(frozen=True)
class _LayerSources:
    """One layer's active features as sources, padded per position for a batched product.

    The layer's features are numbered ``first, first + 1, ...`` in position order; ``upto[p]`` of
    them sit before position ``p``. ``writes`` [T, K, d] holds what each writes (``activation *
    W_dec[i]``) at its position, in slot ``flat % K`` of row ``flat // K`` (zero padding past a
    position's K <= k features), so ``g`` [R, T, d] dotted with all of them is one
    ``einsum("rtd,tkd->rtk")`` read back at ``flat``.
    """

    first: int
    upto: list[int]
    flat: torch.Tensor
    writes: torch.Tensor


def _layer_sources(tc: Transcoder, acts: torch.Tensor, active: torch.Tensor, first: int) -> _LayerSources:
    """`_LayerSources` for a layer's activations ``acts`` [T, n_features], whose non-zero entries
    are at ``active`` [F, 2] (position, index), in row-major order."""
    pos, idx = active.unbind(1)
    t = acts.shape[0]
    counts = torch.bincount(pos, minlength=t)
    upto = [0] + counts.cumsum(0).tolist()
    k = max(1, int(counts.max())) if len(pos) else 1
    slot = torch.arange(len(pos)) - torch.tensor(upto[:-1], dtype=torch.long)[pos]
    writes = torch.zeros(t, k, tc.d_model, dtype=torch.float64)
    writes[pos, slot] = acts[pos, idx][:, None] * tc.W_dec[idx]
    return _LayerSources(first=first, upto=upto, flat=pos * k + slot, writes=writes)


def attribute(model: Any, transcoders: TranscoderSet, tokens: torch.Tensor, position: int | None = None,
              direction: torch.Tensor | None = None, max_feature_nodes: int | None = None) -> Attribution:
    """The full attribution graph of one prompt.

    `tokens` [T] (BOS first); `position` the read position (default the last; later tokens are
    dropped, causality makes them irrelevant); `direction` [V] the target logit as a direction in
    logit space (default: the top logit at `position`).

    `max_feature_nodes` caps the features given rows, as circuit-tracer's option of that name does
    for large models and long prompts: the logit's row first, then, in batches of `CHUNK`, the
    unvisited features of most influence on the logit through the rows computed so far, until the
    cap or until no unvisited feature has any. The graph keeps the visited features only
    (`_visit_by_influence`); memory goes from (all features)^2 to cap x all features. Without it
    (or with a cap at or above the active count) every active feature gets its row.
    """
    if max_feature_nodes is not None and (not isinstance(max_feature_nodes, int) or max_feature_nodes < 1):
        raise InvalidInputError(f"max_feature_nodes must be a positive number of features, got {max_feature_nodes!r}.")
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

    # Features are numbered layer by layer, then by position, then by index (`nonzero` is row-major).
    active = [torch.nonzero(acts > 0) for acts in run["acts"]]  # [F_l, 2]: (position, index)
    where = torch.cat([torch.cat([torch.full((len(a), 1), layer), a], 1) for layer, a in enumerate(active)])
    features = [(layer, p, i) for layer, p, i in where.tolist()]
    sources = [_layer_sources(weights.tc[layer], acts, active[layer], sum(map(len, active[:layer])))
               for layer, acts in enumerate(run["acts"])]
    lay, pos, idx = where.unbind(1)
    activations = torch.stack(run["acts"])[lay, pos, idx]
    n_layers = len(weights.tc)
    errors = [(layer, p) for layer in range(n_layers) for p in range(t)]
    error_vecs = torch.stack(run["errors"])  # [n_layers, T, d]
    n_in, n_f, n_e = t, len(features), len(errors)
    n = n_in + n_f + n_e + 1
    values = torch.zeros(n, dtype=torch.float64)
    values[n_in:n_in + n_f] = torch.stack(run["pre"])[lay, pos, idx]
    values[-1] = run["logits"][position] @ direction

    sweep = _Sweep(weights, state, sources, error_vecs, where)
    wf, bf = weights.ln_final
    u = weights.W_U @ direction
    logit_seed = weights.norm_grad(u * wf, state.ln_final[position])
    logit_bias = bf @ u + weights.b_U @ direction
    common = dict(tokens=state.tokens, position=position, direction=direction, errors=tuple(errors),
                  error_norms=error_vecs.reshape(-1, error_vecs.shape[-1]).norm(dim=-1),
                  replacement_logits=run["logits"], real_logits=state.real_logits, n_active=n_f)
    if max_feature_nodes is not None and max_feature_nodes < n_f:
        kept, visited_rows, row_bias = _visit_by_influence(sweep, position, logit_seed, n_in, n_f, n - 1,
                                                           max_feature_nodes)
        row_bias[-1] += logit_bias
        cols = torch.cat([torch.arange(n_in), n_in + kept, torch.arange(n_in + n_f, n - 1)])
        m = len(cols) + 1
        adjacency = torch.zeros(m, m, dtype=torch.float64)
        adjacency[n_in:n_in + len(kept), :m - 1] = visited_rows[:-1][:, cols]
        adjacency[m - 1, :m - 1] = visited_rows[-1, cols]
        bias = torch.zeros(m, dtype=torch.float64)
        bias[n_in:n_in + len(kept)], bias[-1] = row_bias[:-1], row_bias[-1]
        return Attribution(features=tuple(features[i] for i in kept.tolist()), activations=activations[kept],
                           adjacency=adjacency, bias=bias, values=torch.cat([values[cols], values[-1:]]), **common)

    adjacency = torch.zeros(n, n, dtype=torch.float64)
    bias = torch.zeros(n, dtype=torch.float64)
    # One sweep per chunk of a layer's features (numbered together, by position, so a sweep starts
    # at their layer and stops at their last position: nothing above or after them reaches them),
    # and one for the target logit. Each writes its rows of the adjacency in place.
    for source in sources:
        last = source.first + source.upto[-1]
        for first in range(source.first, last, CHUNK):
            rows = slice(n_in + first, n_in + min(first + CHUNK, last))
            sweep.features(torch.arange(first, min(first + CHUNK, last)), adjacency[rows, :n - 1], bias[rows])
    sweep.logit(position, logit_seed, adjacency[n - 1:, :n - 1], bias[n - 1:])
    bias[-1] += logit_bias
    return Attribution(features=tuple(features), activations=activations, adjacency=adjacency, bias=bias,
                       values=values, **common)


def _visit_by_influence(sweep: _Sweep, position: int, logit_seed: torch.Tensor, n_in: int, n_f: int, n_cols: int,
                        cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows of at most `cap` features, visited in order of influence (see `attribute`).

    Returns the visited features (ascending), their rows [K + 1, n_cols] over every source (the
    logit's last) and those rows' biases. A feature's influence is estimated on the rows computed
    so far: `pruning.influence` over the visited nodes gives each row's total weight from the logit
    (paths through visited features only), and one product with the rows carries it to every source."""
    from catalog.transcoders.pruning import influence, normalised

    rows = torch.zeros(cap + 1, n_cols, dtype=torch.float64)  # row 0 the logit, then features as visited
    bias = torch.zeros(cap + 1, dtype=torch.float64)
    sweep.logit(position, logit_seed, rows[:1], bias[:1])
    row_node = torch.full((cap + 1,), -1, dtype=torch.long)  # each row's feature (-1: the logit)
    visited = torch.zeros(n_f, dtype=torch.bool)
    m = 1
    while m <= cap:
        a = normalised(rows[:m])
        among = torch.zeros(m, m, dtype=torch.float64)  # the rows' edges between visited nodes
        among[:, 1:] = a[:, n_in + row_node[1:m]]
        weight = influence(among, 0)
        weight[0] = 1.0
        score = (weight @ a)[n_in:n_in + n_f].masked_fill(visited, 0.0)
        pick = score.argsort(descending=True, stable=True)[:min(CHUNK, cap + 1 - m)]
        pick = pick[score[pick] > 0]
        if not len(pick):
            break
        visited[pick] = True
        layers = sweep.where[pick, 0]
        for layer in layers.unique().tolist():
            batch = pick[layers == layer].sort().values  # one layer, in position order
            sweep.features(batch, rows[m:m + len(batch)], bias[m:m + len(batch)])
            row_node[m:m + len(batch)] = batch
            m += len(batch)
    kept = visited.nonzero()[:, 0]
    row_of = torch.empty(n_f, dtype=torch.long)
    row_of[row_node[1:m]] = torch.arange(1, m)
    order = torch.cat([row_of[kept], torch.zeros(1, dtype=torch.long)])  # features ascending, the logit last
    return kept, rows[order], bias[order]


class _Sweep:
    """Backward sweeps through one prompt's frozen linear model, each for a batch of targets.

    A sweep carries ``g`` [R, t, d], each target's gradient with respect to the residual stream,
    from the targets' layer down to the embeddings, only over the positions ``t`` up to the last
    target's (attention is causal). Going down a layer, the sources its MLP wrote (active features,
    error nodes) are read off ``g``, then attention's bias write, then ``g`` goes back through
    attention. Each sweep fills its targets' rows of the adjacency (``out`` [R, sources]) and bias.
    """

    def __init__(self, weights: _Weights, state: FrozenState, sources: list[_LayerSources],
                 error_vecs: torch.Tensor, where: torch.Tensor) -> None:
        self.weights, self.state, self.sources, self.error_vecs, self.where = (
            weights, state, sources, error_vecs, where)
        self.n_in = len(state.tokens)
        self.first_error = self.n_in + len(where)
        self.attention_bias = torch.stack([weights.attention_bias(layer, state.patterns[layer])
                                           for layer in range(len(weights.tc))])

    def features(self, targets: torch.Tensor, out: torch.Tensor, bias: torch.Tensor) -> None:
        """Sweep for the features `targets` (ascending, all in one layer, so in position order):
        each reads the stream before its layer's MLP, ``x @ W_enc[:, i] + b_enc[i]`` with ``x``
        normalised."""
        lay, pos, idx = self.where[targets].unbind(1)
        layer = int(lay[0])
        tc = self.weights.tc[layer]
        t = int(pos.max()) + 1
        seed = self.weights.norm_grad(tc.W_enc[:, idx].T, self.state.ln2[layer, pos])  # [R, d]
        g = torch.zeros(len(targets), t, tc.d_model, dtype=torch.float64)
        g[torch.arange(len(targets)), pos] = seed
        bias += tc.b_enc[idx] + (seed * self.attention_bias[layer, pos]).sum(1)
        g += self.weights.attention_backward_from(layer, seed, pos, self.state.patterns[layer, :, :t, :t],
                                                  self.state.ln1[layer, :t])
        self._down(g, layer - 1, out, bias)

    def logit(self, position: int, seed: torch.Tensor, out: torch.Tensor, bias: torch.Tensor) -> None:
        """Sweep for the target logit, whose gradient at the top of the stream is `seed` [d] at
        `position` (its bias is the caller's)."""
        g = torch.zeros(1, position + 1, len(seed), dtype=torch.float64)
        g[0, position] = seed
        self._down(g, len(self.weights.tc) - 1, out, bias)

    def _down(self, g: torch.Tensor, top: int, out: torch.Tensor, bias: torch.Tensor) -> None:
        """Carry `g`, at the top of layer `top` (-1: at the embeddings), down to the embeddings,
        reading off every source on the way."""
        t = g.shape[1]
        for layer in range(top, -1, -1):
            self._read_mlp(layer, g, out, bias)
            bias += torch.einsum("rtd,td->r", g, self.attention_bias[layer, :t])
            g = g + self.weights.attention_backward(layer, g, self.state.patterns[layer, :, :t, :t],
                                                    self.state.ln1[layer, :t])
        out[:, :t] = torch.einsum("rtd,td->rt", g, self.state.embed[:t])

    def _read_mlp(self, layer: int, g: torch.Tensor, out: torch.Tensor, bias: torch.Tensor) -> None:
        """Read off what `layer`'s MLP writes (its active features, error nodes and decoder bias)."""
        r, t, _ = g.shape
        src = self.sources[layer]
        n_here = src.upto[t]  # the layer's features before position t (the rest receive nothing)
        if n_here:
            dots = torch.einsum("rtd,tkd->rtk", g, src.writes[:t]).reshape(r, -1)
            first = self.n_in + src.first
            out[:, first:first + n_here] = dots[:, src.flat[:n_here]]
        first = self.first_error + layer * self.n_in
        out[:, first:first + t] = torch.einsum("rtd,td->rt", g, self.error_vecs[layer, :t])
        bias += torch.einsum("rtd,d->r", g, self.weights.tc[layer].b_dec)

"""The attribution graph's defining properties, on the embedded model (catalog-default).

Checked against an independent implementation of the frozen replacement model: TransformerLens's
own forward pass with every normalisation scale and attention pattern held at its clean value by
hooks, and each MLP's output replaced by its transcoder's decoded (frozen) activations plus the
error node. The graph itself comes from `catalog.transcoders.attribution`'s batched backward
sweep, which shares none of that code. The model runs in float64, so the sums hold to 1e-9.

The transcoders are random (seeded): the properties hold for any transcoder, trained or not.
"""

from __future__ import annotations

import copy

import pytest
import torch

from catalog.naming import FINAL_NORM_SCALE_HOOK, attn_hook, block_hook
from catalog.transcoders.attribution import attribute
from catalog.transcoders.model import Transcoder, TranscoderSet, input_hook, output_hook
from catalog.transcoders.pruning import influence, normalised, prune

TOL = 1e-9

torch.set_num_threads(1)  # small tensors: one thread is faster than contending for shared cores


@pytest.fixture(scope="module")
def loaded():
    from catalog.models import load_model

    # on the CPU, as the transcoders these tests build and run next to the model's activations
    return load_model(None, device="cpu")


@pytest.fixture(scope="module")
def model64(loaded):
    """The embedded model in float64 (a copy; its LayerNorms then keep float64 too)."""
    model = copy.deepcopy(loaded.model)
    model.cfg.dtype = torch.float64
    return model.to(torch.float64)


def random_set(activation: str = "topk", seed: int = 0) -> TranscoderSet:
    torch.manual_seed(seed)
    layers = [Transcoder(128, 256, 12, activation) for _ in range(4)]
    for tc in layers:
        with torch.no_grad():
            tc.b_enc.normal_(0.0, 0.3)
            tc.b_dec.normal_(0.0, 0.1)
            if activation == "jumprelu":
                tc.threshold.uniform_(1.2, 2.0)  # about 10 active per position
    return TranscoderSet("catalog-default", layers)


@pytest.fixture(scope="module")
def ioi(loaded):
    from catalog.tasks import get_task

    return get_task("ioi").build(loaded, n=2, seed=0)


def logit_diff_direction(ds, i: int, d_vocab: int) -> torch.Tensor:
    direction = torch.zeros(d_vocab, dtype=torch.float64)
    direction[int(ds.answers[i])] += 1.0
    direction[int(ds.wrong_answers[i])] -= 1.0
    return direction


def prompt(ds, i: int = 0) -> tuple[torch.Tensor, int]:
    position = int(ds.positions[i])
    return ds.clean[i, :position + 1], position


def frozen_run(model, tset, tokens, acts=None, zero_inputs=False):
    """TransformerLens's forward pass through the frozen replacement model: scales and patterns
    frozen at the clean pass, MLP outputs = decoded activations (`acts`, per layer, default the
    transcoders' own) + error nodes. Returns (pre-activations per layer [T, F], logits [T, V])."""
    n = model.cfg.n_layers
    frozen = [FINAL_NORM_SCALE_HOOK] + [h for layer in range(n) for h in (
        block_hook(layer, "ln1.scale"), block_hook(layer, "ln2.scale"), attn_hook(layer, "pattern"))]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None])
    tcs = [copy.deepcopy(tc).double().requires_grad_(False) for tc in tset.layers]
    own = [tc.encode(cache[input_hook(layer)][0]) for layer, tc in enumerate(tcs)]
    errors = [cache[output_hook(layer)][0] - tc.decode(own[layer]) for layer, tc in enumerate(tcs)]
    acts = own if acts is None else acts
    pre: dict[int, torch.Tensor] = {}
    hooks = [(name, lambda act, hook, v=cache[name]: v) for name in frozen]
    for layer, tc in enumerate(tcs):
        hooks.append((input_hook(layer), lambda act, hook, layer=layer, tc=tc: pre.__setitem__(
            layer, tc.pre_activations(act[0]))))
        hooks.append((output_hook(layer), lambda act, hook, layer=layer, tc=tc: (
            tc.decode(acts[layer]) + errors[layer])[None]))
    if zero_inputs:
        hooks += [(h, lambda act, hook: torch.zeros_like(act)) for h in ("hook_embed", "hook_pos_embed")]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]
    return [pre[layer] for layer in range(n)], logits, own


def test_the_replacement_model_with_error_nodes_reproduces_the_real_logits(model64, ioi):
    tokens, position = prompt(ioi)
    att = attribute(model64, random_set(), tokens, position)
    with torch.no_grad():
        real = model64(tokens[None])[0]
    assert torch.allclose(att.replacement_logits, real, atol=TOL, rtol=0)
    # TransformerLens's own frozen forward agrees too (the error nodes close every gap)
    _, logits, _ = frozen_run(model64, random_set(), tokens)
    assert torch.allclose(logits, real, atol=TOL, rtol=0)


@pytest.mark.parametrize("activation", ["topk", "jumprelu"])
def test_every_target_is_the_sum_of_its_direct_contributions_and_biases(model64, ioi, activation):
    tset = random_set(activation)
    for i in range(len(ioi)):
        tokens, position = prompt(ioi, i)
        direction = logit_diff_direction(ioi, i, model64.cfg.d_vocab)
        att = attribute(model64, tset, tokens, position, direction)
        assert att.features, "the random transcoders should have active features"
        targets = [att.feature_index(j) for j in range(len(att.features))] + [att.logit_index]
        total = att.adjacency[targets].sum(1) + att.bias[targets]
        assert torch.allclose(total, att.values[targets], atol=TOL, rtol=0)
        # ... and those values are the real ones: the task's logit difference and the transcoders'
        # pre-activations on the real model's MLP inputs
        with torch.no_grad():
            logits, cache = model64.run_with_cache(tokens[None])
        assert abs(float(att.values[att.logit_index]) - float(ioi[i:i + 1].metric(logits))) < TOL
        for layer in range(model64.cfg.n_layers):
            real_pre = copy.deepcopy(tset.layers[layer]).double().requires_grad_(False).pre_activations(
                cache[input_hook(layer)][0])
            for j, (lay, pos, idx) in enumerate(att.features):
                if lay == layer:
                    assert abs(float(att.values[att.feature_index(j)]) - float(real_pre[pos, idx])) < TOL


def test_the_bias_terms_are_what_the_frozen_model_gives_with_every_source_removed(model64, ioi):
    """Not a remainder: with embeddings, features and error nodes all zero, TransformerLens's
    frozen forward gives each target its bias contribution alone."""
    tset = random_set()
    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    att = attribute(model64, tset, tokens, position, direction)
    n = model64.cfg.n_layers
    zeros = [torch.zeros(len(tokens), tset.n_features, dtype=torch.float64) for _ in range(n)]
    pre, logits, own = frozen_run(model64, tset, tokens, acts=zeros, zero_inputs=True)
    # error nodes must go too: subtract their share (each is a source with a known edge)
    errors_in = {t: float(att.adjacency[t, att.error_index(0):att.logit_index].sum())
                 for t in range(att.n_nodes)}
    for j, (layer, pos, idx) in enumerate(att.features):
        t = att.feature_index(j)
        assert abs(float(pre[layer][pos, idx]) - errors_in[t] - float(att.bias[t])) < TOL
    t = att.logit_index
    assert abs(float(logits[position] @ direction) - errors_in[t] - float(att.bias[t])) < TOL


def test_zeroing_a_feature_moves_each_downstream_node_by_its_edge_weight(model64, ioi):
    tset = random_set()
    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    att = attribute(model64, tset, tokens, position, direction)
    base_pre, base_logits, own = frozen_run(model64, tset, tokens)
    # the features with the largest effects out, from layers 0 to 2
    out = att.adjacency.abs().sum(0)
    sources = [j for j in sorted(range(len(att.features)), key=lambda j: -float(out[att.feature_index(j)]))
               if att.features[j][0] < 3][:4]
    assert sources
    for j in sources:
        layer, pos, idx = att.features[j]
        acts = [a.clone() for a in own]
        acts[layer][pos, idx] = 0.0
        pre, logits, _ = frozen_run(model64, tset, tokens, acts=acts)
        s = att.feature_index(j)
        moved = 0
        for k, (lay, p, i) in enumerate(att.features):
            change = float(pre[lay][p, i] - base_pre[lay][p, i])
            edge = float(att.adjacency[att.feature_index(k), s])
            assert abs(change + edge) < TOL, (att.features[j], att.features[k], change, edge)
            moved += abs(edge) > 1e-6
        change = float((logits[position] - base_logits[position]) @ direction)
        assert abs(change + float(att.adjacency[att.logit_index, s])) < TOL
        assert moved, "a strong feature should move some downstream feature"


def test_float32_model_agrees_with_the_float64_graph(loaded, model64, ioi):
    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    a32 = attribute(loaded.model, random_set(), tokens, position, direction)
    a64 = attribute(model64, random_set(), tokens, position, direction)
    assert a32.features == a64.features
    assert torch.allclose(a32.adjacency, a64.adjacency, atol=1e-3, rtol=1e-3)


def test_influence_and_pruning(model64, ioi):
    a = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    assert normalised(a).tolist() == [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    assert influence(normalised(a), 2).tolist() == [1.0, 0.5, 0.0]
    tokens, position = prompt(ioi)
    att = attribute(model64, random_set(), tokens, position, logit_diff_direction(ioi, 0, model64.cfg.d_vocab))
    loose, tight = prune(att, 0.95, 0.99), prune(att, 0.5, 0.9)
    feats = slice(att.n_inputs, att.n_inputs + len(att.features))
    assert int(tight.nodes[feats].sum()) < int(loose.nodes[feats].sum()) <= len(att.features)
    assert bool(loose.nodes[att.logit_index]) and int(loose.edges.sum()) > int(tight.edges.sum()) > 0
    assert not bool((loose.edges & (att.adjacency == 0)).any())  # only real edges are kept
    # every kept node reaches the logit along kept edges
    for node in loose.nodes.nonzero().flatten().tolist():
        if node != att.logit_index:
            assert bool(loose.edges[:, node].any()), node
    # the node step keeps the most influential features: nothing kept is less influential than
    # every dropped one (the reachability step may drop a few more)
    kept = loose.influence[feats][loose.nodes[feats]]
    dropped = loose.influence[feats][~loose.nodes[feats]]
    assert float(kept.max()) >= float(dropped.max())
    with pytest.raises(Exception, match="node_threshold"):
        prune(att, 0.0, 0.9)


def _restricted(full, capped):
    """The uncapped graph's rows (the capped graph's features, then the logit) and columns (inputs,
    those features, errors) in the capped graph's order, with the rows' biases."""
    idx = torch.tensor([full.features.index(f) for f in capped.features], dtype=torch.long)
    n_in, n_f = full.n_inputs, len(full.features)
    cols = torch.cat([torch.arange(n_in), n_in + idx, torch.arange(n_in + n_f, full.logit_index)])
    rows = torch.cat([n_in + idx, torch.tensor([full.logit_index])])
    return full.adjacency[rows][:, cols], full.bias[rows], idx


def test_a_feature_cap_visits_features_by_influence_and_keeps_their_edges_exact(model64, ioi):
    from catalog.transcoders.pruning import normalised as norm

    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    full = attribute(model64, random_set(), tokens, position, direction)
    n_f = len(full.features)
    influential = int((prune(full).influence[full.n_inputs:full.n_inputs + n_f] > 0).sum())
    assert 40 < influential < n_f  # some features reach nothing: a cap above this visits no more
    for cap in (n_f - 1, influential, 40):
        capped = attribute(model64, random_set(), tokens, position, direction, max_feature_nodes=cap)
        assert capped.n_active == n_f and len(capped.features) == min(cap, influential)
        assert capped.values[capped.logit_index] == full.values[full.logit_index]
        sub, bias, idx = _restricted(full, capped)
        targets = torch.cat([torch.arange(capped.n_inputs, capped.n_inputs + len(capped.features)),
                             torch.tensor([capped.logit_index])])
        assert torch.allclose(capped.adjacency[targets][:, :capped.logit_index], sub, atol=TOL, rtol=0)
        assert torch.allclose(capped.bias[targets], bias, atol=TOL, rtol=0)
        assert int((capped.adjacency != 0).sum()) == int((sub != 0).sum())  # no other entry
    # at or above the influential features the cap drops only features of no influence: same pruning
    capped = attribute(model64, random_set(), tokens, position, direction, max_feature_nodes=n_f - 1)
    _, _, idx = _restricted(full, capped)
    kept_full = prune(full).nodes[full.n_inputs:full.n_inputs + n_f].nonzero().flatten()
    kept_capped = idx[prune(capped).nodes[capped.n_inputs:capped.n_inputs + len(capped.features)]]
    assert kept_full.tolist() == kept_capped.tolist()
    # a cap under one batch is one visit: the features most influential through the logit's row alone
    small = attribute(model64, random_set(), tokens, position, direction, max_feature_nodes=40)
    direct = norm(full.adjacency[full.logit_index:, :full.logit_index].clone())[0, full.n_inputs:full.n_inputs + n_f]
    assert set(_restricted(full, small)[2].tolist()) == set(direct.argsort(descending=True, stable=True)[:40].tolist())
    with pytest.raises(Exception, match="max_feature_nodes"):
        attribute(model64, random_set(), tokens, position, direction, max_feature_nodes=0)


def test_heads_reads_of_a_feature_add_up_to_its_edge_into_the_target(model64, ioi):
    """`head_links`'s reads: the feature -> logit edge of the graph splits exactly over the first
    head each path passes through, plus the residual-only rest at the read position."""
    from catalog.transcoders.heads import head_links

    tset = random_set()
    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    att = attribute(model64, tset, tokens, position, direction)
    links = head_links(model64, tset, tokens, position, direction, list(att.features))
    assert [link.feature for link in links] == list(att.features)  # every active one, in order
    read_somewhere = 0
    for j, link in enumerate(links):
        edge = float(att.adjacency[att.logit_index, att.feature_index(j)])
        assert abs(link.edge - edge) < TOL
        assert abs(float(link.reads.sum()) + link.direct - edge) < TOL
        layer, pos, _ = link.feature
        assert not bool(link.reads[:layer + 1].any())  # no head at or below the feature reads it
        if pos != position:
            assert link.direct == 0.0  # off the read position only heads carry it to the logit
        read_somewhere += bool(link.reads.abs().max() > 1e-6)
    assert read_somewhere


def test_heads_writes_into_a_feature_are_each_heads_output_through_the_frozen_encoder(model64, ioi):
    """`head_links`'s writes against TransformerLens's own per-head outputs (hook_z @ W_O): each is
    the head's direct contribution to the pre-activation, and with the embeddings, MLP outputs,
    output biases and b_enc they sum to it."""
    from catalog.transcoders.heads import head_links

    tset = random_set()
    tokens, position = prompt(ioi)
    direction = logit_diff_direction(ioi, 0, model64.cfg.d_vocab)
    att = attribute(model64, tset, tokens, position, direction)
    picked = [f for f in att.features if f[0] >= 1][:6]
    links = head_links(model64, tset, tokens, position, direction, picked)
    with torch.no_grad():
        _, cache = model64.run_with_cache(tokens[None])
    for link in links:
        layer, p, i = link.feature
        scale = cache[block_hook(layer, "ln2.scale")][0, p, 0]
        w_enc = tset.layers[layer].W_enc[:, i].double()
        grad = (w_enc - w_enc.mean()) / scale  # the frozen LayerNorm's gradient of x @ W_enc[:, i]
        total = (cache["hook_embed"][0, p] + cache["hook_pos_embed"][0, p]) @ grad + float(tset.layers[layer].b_enc[i].detach())
        for lay in range(model64.cfg.n_layers):
            z = cache[attn_hook(lay, "z")][0, p]  # [heads, d_head]
            for h in range(model64.cfg.n_heads):
                own = float((z[h] @ model64.blocks[lay].attn.W_O[h]) @ grad)
                assert abs(float(link.writes[lay, h]) - (own if lay <= layer else 0.0)) < TOL
            if lay <= layer:
                total += model64.blocks[lay].attn.b_O @ grad
            if lay < layer:
                total += cache[output_hook(lay)][0, p] @ grad
        assert abs(float(total) + float(link.writes.sum()) - link.pre) < TOL
        assert abs(link.pre - float(att.values[att.feature_index(att.features.index(link.feature))])) < TOL

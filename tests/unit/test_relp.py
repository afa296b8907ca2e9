"""RelP checked by hand: with every LRP rule's constant frozen, the network is linear, and RelP's
first-order scores must then equal exact edge patching of that frozen network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_discovery_fixtures import random_model, toy_dataset

from catalog.discovery import score
from catalog.discovery.engine import patched_logits, prepared, record
from catalog.discovery.methods.relp import relevance_hooks
from catalog.naming import FINAL_NORM_SCALE_HOOK, attn_hook, block_hook


def _frozen_network_hooks(model, tokens):
    """Hooks that hold every LayerNorm scale and attention pattern at its clean value and
    replace each MLP activation by the linear map ``x * act(x_clean)/x_clean``: the network RelP's
    rules linearise (LN-rule, AH-rule, identity rule)."""
    names = [FINAL_NORM_SCALE_HOOK]
    for layer in range(model.cfg.n_layers):
        names += [block_hook(layer, "ln1.scale"), block_hook(layer, "ln2.scale"), attn_hook(layer, "pattern"),
                  block_hook(layer, "mlp.pre"), block_hook(layer, "mlp.post")]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    hooks = []
    for name in names:
        if name.endswith(("scale", "pattern")):
            hooks.append((name, lambda act, hook, v=cache[name]: v))
    for layer in range(model.cfg.n_layers):
        ratio = cache[block_hook(layer, "mlp.post")] / cache[block_hook(layer, "mlp.pre")]
        seen = {}
        hooks.append((block_hook(layer, "mlp.pre"), lambda act, hook, seen=seen: seen.__setitem__("x", act)))
        hooks.append((block_hook(layer, "mlp.post"), lambda act, hook, seen=seen, r=ratio: seen["x"] * r))
    return hooks


@torch.no_grad()
def _frozen_edge_patching(model, ds):
    """Exact effect of patching each edge alone in the frozen (linear) network: ``[S, Dst]``."""
    with prepared(model) as layout:
        _, ablated = record(model, layout, ds.corrupt)
        frozen = _frozen_network_hooks(model, ds.clean)
        with model.hooks(fwd_hooks=frozen):
            base = ds.metric(model(ds.clean)).double().mean()
            out = np.zeros((layout.n_sources, layout.n_destinations))
            for s, d in layout.edges():
                mask = torch.zeros(1, layout.n_sources, layout.n_destinations)
                mask[0, s, d] = 1.0
                out[s, d] = float(base - ds.metric(patched_logits(model, layout, ds.clean, ablated, mask)).double().mean())
    return out


def _dense(graph, model):
    from catalog.discovery.layout import Layout

    layout = Layout.for_model(model)
    index = layout.edge_index()
    out = np.zeros((layout.n_sources, layout.n_destinations))
    for e in graph.edges:
        out[index[e.key]] = e.score
    return out


def test_relp_equals_exact_patching_of_the_network_its_rules_freeze():
    model = random_model(n_layers=2, n_heads=2, d_model=16, seed=11)
    ds = toy_dataset(n=4, t=6, seed=12)
    relp = _dense(score(model, ds, "relp", batch_size=4), model)
    frozen = _frozen_edge_patching(model, ds)
    eap = _dense(score(model, ds, "eap", batch_size=4), model)
    scale = np.abs(frozen).max()
    assert scale > 1e-2
    np.testing.assert_allclose(relp, frozen, atol=1e-4 * scale)
    # the check has teeth: plain gradients (EAP) do not linearise the same network
    assert np.abs(eap - frozen).max() > 100 * 1e-4 * scale


def test_relp_gives_query_and_key_edges_no_relevance():
    """The AH-rule holds attention patterns constant, so relevance reaches heads only via values."""
    model = random_model(n_layers=2, n_heads=2, seed=13)
    graph = score(model, toy_dataset(n=4, seed=14), "relp")
    qk = [e.score for e in graph.edges if e.qkv is not None and e.qkv.value in "qk"]
    v = [e.score for e in graph.edges if e.qkv is not None and e.qkv.value == "v"]
    assert qk and all(s == 0.0 for s in qk)
    assert any(abs(s) > 1e-6 for s in v)


@pytest.mark.parametrize("gated", [False, True])
def test_relevance_rules_leave_the_forward_pass_unchanged(gated):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = random_model(n_layers=2, n_heads=2, seed=15).cfg.to_dict() | {"gated_mlp": gated}
    model = HookedTransformer(HookedTransformerConfig(
        **{k: v for k, v in cfg.items() if k in HookedTransformerConfig.__dataclass_fields__}))
    tokens = toy_dataset(n=3, seed=16).clean
    with torch.no_grad():
        plain = model(tokens)
        with model.hooks(fwd_hooks=relevance_hooks(model)):
            ruled = model(tokens)
    assert torch.equal(plain, ruled)


def test_half_rule_splits_a_gated_product_between_its_factors():
    """In a gated MLP ``post = gelu(pre) * lin``, the coefficient to `lin` is ``gelu(pre)/2`` and to
    `pre` is ``lin/2 * gelu(pre)/pre`` (identity rule, then half-rule)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = random_model(n_layers=1, n_heads=2, seed=17).cfg.to_dict() | {"gated_mlp": True}
    model = HookedTransformer(HookedTransformerConfig(
        **{k: v for k, v in cfg.items() if k in HookedTransformerConfig.__dataclass_fields__}))
    for p in model.parameters():
        p.requires_grad_(False)
    tokens = toy_dataset(n=2, seed=18).clean
    kept = {}

    def leaf(name):
        def hook(act, hook):
            kept[name] = act.detach().requires_grad_(True)
            return kept[name]
        return hook

    hooks = [(block_hook(0, "mlp.pre"), leaf("pre")), (block_hook(0, "mlp.pre_linear"), leaf("lin"))]
    with model.hooks(fwd_hooks=hooks + relevance_hooks(model) + [(block_hook(0, "mlp.post"),
                                                                  lambda a, hook: kept.__setitem__("post", a))]):
        model(tokens)
    kept["post"].sum().backward()
    pre, lin = kept["pre"].detach(), kept["lin"].detach()
    act = torch.nn.functional.gelu(pre)
    torch.testing.assert_close(kept["lin"].grad, act / 2)
    torch.testing.assert_close(kept["pre"].grad, lin / 2 * act / pre, rtol=1e-4, atol=1e-6)

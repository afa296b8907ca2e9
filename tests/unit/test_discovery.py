"""Discovery methods on tiny seeded models: exactness, agreement, and a hand-built circuit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_discovery_fixtures import (
    COPY_HEAD,
    copy_dataset,
    copy_head_model,
    random_model,
    toy_dataset,
)

from catalog.discovery import METHODS, score, select
from catalog.discovery.evaluation import Evaluator, evaluate
from catalog.discovery.layout import Layout
from catalog.discovery.methods.activation_patching import activation_patching
from catalog.discovery.methods.edge_patching import edge_patching
from catalog.errors import DiscoveryError, InvalidInputError, UnknownKeyError
from catalog.provenance import Ablation, Selection


@pytest.fixture(scope="module")
def model():
    return random_model(n_layers=2, n_heads=3, d_model=24, seed=3)


@pytest.fixture(scope="module")
def data():
    return toy_dataset(n=10, t=6, seed=4)


def _reference_activation_patching(model, data, ablation: Ablation) -> dict[str, float]:
    """One component per forward pass, with plain TransformerLens hooks and caches."""
    model.set_use_attn_result(True)
    try:
        with torch.no_grad():
            base = data.metric(model(data.clean)).double()
            _, cache = model.run_with_cache(data.corrupt if ablation is Ablation.COUNTERFACTUAL else data.clean)
            out = {}
            for layer in range(model.cfg.n_layers):
                mlp = [] if model.cfg.attn_only else [(f"blocks.{layer}.hook_mlp_out", None)]
                for name, head in [(f"blocks.{layer}.attn.hook_result", h) for h in range(model.cfg.n_heads)] + mlp:
                    ref = cache[name]
                    if ablation is Ablation.MEAN:
                        ref = ref.mean(0, keepdim=True).expand_as(ref)

                    def hook(act, hook, head=head, ref=ref):
                        value = torch.zeros_like(ref) if ablation is Ablation.ZERO else ref
                        if head is None:
                            return value.clone()
                        act[:, :, head] = value[:, :, head]
                        return act

                    patched = data.metric(model.run_with_hooks(data.clean, fwd_hooks=[(name, hook)])).double()
                    out[f"a{layer}.h{head}" if head is not None else f"m{layer}"] = float((base - patched).mean())
            return out
    finally:
        model.set_use_attn_result(False)


@pytest.mark.parametrize("ablation", list(Ablation))
def test_batched_activation_patching_equals_one_component_per_pass(model, data, ablation):
    batched = activation_patching(model, data, ablation, batch_size=4)  # 3 batches, all components per pass
    reference = _reference_activation_patching(model, data, ablation)
    assert batched.keys() == reference.keys()
    for key in reference:
        assert batched[key] == pytest.approx(reference[key], abs=1e-5), key
    assert max(abs(v) for v in reference.values()) > 1e-3  # the comparison is not between zeros


def _late_difference(data, at: int):
    """`data` with the counterfactual token moved from position 0 to `at` (earlier positions shared)."""
    clean, corrupt = data.clean.clone(), data.clean.clone()
    corrupt[:, at] = data.corrupt[:, 0]
    clean[:, at] = data.clean[:, 0]
    return type(data)(clean, corrupt, data.positions, data.answers, data.wrong)


@pytest.mark.parametrize("kind", ["mlp", "attn-only", "parallel"])
@pytest.mark.parametrize("ablation", list(Ablation))
def test_patching_from_the_clean_run_equals_the_reference_when_prompts_share_a_prefix(kind, ablation):
    # Positions before the first difference come from the clean run's keys and values, and each
    # pass starts after the patched layer's attention (or, for parallel blocks, runs it all).
    model = random_model(n_layers=3, n_heads=2, d_model=16, seed=5, attn_only=kind == "attn-only",
                         parallel=kind == "parallel")
    data = _late_difference(toy_dataset(n=8, t=7, seed=6), at=3)
    batched = activation_patching(model, data, ablation, batch_size=3)
    reference = _reference_activation_patching(model, data, ablation)
    assert batched == pytest.approx(reference, abs=1e-5)
    assert max(abs(v) for v in reference.values()) > 1e-3


def test_activation_patching_batches_agree_with_loop_through_the_same_code(model, data):
    batched = activation_patching(model, data, batch_size=10)
    loop = activation_patching(model, data, batch_size=10, components_per_pass=1, share_prefix=False)
    assert batched == pytest.approx(loop, abs=1e-5)


def test_one_edge_patched_by_the_engine_equals_a_hand_written_hook(model, data):
    scores = edge_patching(model, data, batch_size=5)
    lay = Layout.for_model(model)
    s, d = lay.head_source(1, 2), lay.logits_dest
    model.set_use_attn_result(True)
    try:
        with torch.no_grad():
            _, clean = model.run_with_cache(data.clean)
            _, corrupt = model.run_with_cache(data.corrupt)
            diff = clean["blocks.1.attn.hook_result"][:, :, 2] - corrupt["blocks.1.attn.hook_result"][:, :, 2]
            patched = model.run_with_hooks(data.clean, fwd_hooks=[("blocks.1.hook_resid_post", lambda a, hook: a - diff)])
            expected = float((data.metric(model(data.clean)) - data.metric(patched)).mean())
    finally:
        model.set_use_attn_result(False)
    assert scores[s][d] == pytest.approx(expected, abs=1e-5)
    assert abs(expected) > 1e-4


def test_patching_every_edge_out_of_a_node_equals_patching_the_node(model, data):
    ap = activation_patching(model, data, batch_size=10)
    ev = Evaluator(model, data, batch_size=10)
    lay = ev.layout
    for node in ("a0.h1", "m0", "a1.h0"):
        s = lay.sources.index(node)
        mask = torch.zeros(lay.n_sources, lay.n_destinations, dtype=torch.bool)
        mask[s] = ev._valid[s]
        patched = ev.metric_of_masks(mask.unsqueeze(0))[0]
        assert ev.metric_clean - patched == pytest.approx(ap[node], abs=1e-5)


def _pearson(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(np.asarray(a), np.asarray(b))[0, 1])


@pytest.mark.slow
def test_eap_and_eap_ig_correlate_with_exact_edge_patching(model, data):
    exact = [e.score for e in score(model, data, "edge-patching", batch_size=5).edges]
    eap = [e.score for e in score(model, data, "eap", batch_size=5).edges]
    eap_ig = [e.score for e in score(model, data, "eap-ig", batch_size=5, steps=5).edges]
    r_eap, r_ig = _pearson(eap, exact), _pearson(eap_ig, exact)
    print(f"\nPearson r vs edge-patching over {len(exact)} edges: eap {r_eap:.3f}, eap-ig {r_ig:.3f}")
    assert r_eap > 0.8 and r_ig > 0.8


def test_eap_with_one_step_is_eap_ig_with_one_step(model, data):
    a = score(model, data, "eap", batch_size=5)
    b = score(model, data, "eap-ig", batch_size=5, steps=1)
    assert [e.score for e in a.edges] == pytest.approx([e.score for e in b.edges], abs=1e-6)


@pytest.mark.parametrize("method", ["activation-patching", "eap", "eap-ig", "edge-patching"])
def test_hand_built_copy_head_is_found(method):
    m, ds = copy_head_model(), copy_dataset()
    graph = score(m, ds, method)
    if method == "activation-patching":
        ranked = sorted((n for n in graph.nodes if n.score is not None), key=lambda n: -abs(n.score))
        assert ranked[0].id == COPY_HEAD and abs(ranked[0].score) > 5 * abs(ranked[1].score)
        circuit = select(graph, Selection(rule="top-k", value=1))
    else:
        top = sorted(graph.edges, key=lambda e: -abs(e.score))[:2]
        assert {e.id for e in top} == {"a1.h0->logits", "input->a1.h0<v>"}
        circuit = select(graph, Selection(rule="top-k", value=2))
    assert circuit.heads == {COPY_HEAD}
    assert Evaluator(m, ds).faithfulness(circuit) > 0.75


@pytest.mark.parametrize("ablation", list(Ablation))
def test_full_circuit_is_faithful_and_empty_is_not(model, data, ablation):
    graph = score(model, data, "eap", ablation=ablation, batch_size=5)
    ev = Evaluator(model, data, ablation, batch_size=5)
    full, empty = select(graph, Selection(rule="top-k", value=10**6)), select(graph, Selection(rule="top-k", value=0))
    assert ev.faithfulness(full) == pytest.approx(1.0, abs=1e-6)
    assert ev.faithfulness(empty) == pytest.approx(0.0, abs=1e-6)


def test_empty_counterfactual_circuit_is_the_counterfactual_run(model, data):
    ev = Evaluator(model, data, batch_size=4)
    with torch.no_grad():
        assert ev.metric_ablated == pytest.approx(float(data.metric(model(data.corrupt)).double().mean()), abs=1e-5)


def test_evaluation_reports_progress_per_forward_batch(model, data):
    calls: list[tuple[str, int, int]] = []
    ev = Evaluator(model, data, batch_size=4, progress=lambda *a: calls.append(a))
    batches_per_pass = -(-len(data) // 4)
    after_setup = len(calls)
    assert after_setup == 2 * batches_per_pass  # the clean pass, then the ablated one
    ev.faithfulness(select(score(model, data, "eap", batch_size=4), Selection(rule="top-k", value=5)))
    done = [d for _, d, _ in calls]
    assert done == list(range(1, len(calls) + 1)) and len(calls) == after_setup + batches_per_pass
    assert all(d <= t for _, d, t in calls) and calls[-1][1] == calls[-1][2]


def test_evaluate_reports_faithfulness_cpr_and_cmd_from_one_curve(model, data):
    graph = score(model, data, "eap", batch_size=5)
    ev = Evaluator(model, data, batch_size=5)
    circuit = select(graph, Selection(rule="top-k", value=12))
    metrics = evaluate(circuit, ev)
    xs = [x for x, _ in metrics["faithfulness_curve"]]
    fs = [f for _, f in metrics["faithfulness_curve"]]
    assert xs[0] == 0.001 and xs[-1] == 1.0 and fs[-1] == pytest.approx(1.0, abs=1e-6)
    assert metrics["cpr"] == pytest.approx(float(np.trapezoid(fs, xs)))
    assert metrics["cmd"] == pytest.approx(float(np.trapezoid(np.abs(1 - np.asarray(fs)), xs)))
    assert metrics["faithfulness"] == pytest.approx(ev.faithfulness(circuit))


@pytest.mark.slow
def test_faithfulness_target_gives_the_smallest_top_k_reaching_it(model, data):
    graph = score(model, data, "eap", batch_size=5)
    ev = Evaluator(model, data, batch_size=5)
    circuit = select(graph, Selection(rule="faithfulness", value=0.8), ev)
    assert ev.faithfulness(circuit) >= 0.8
    n = sum(e.score is not None for e in graph.edges)
    fs = ev.faithfulness_many([select(graph, Selection(rule="top-k", value=j)) for j in range(n + 1)])
    first = next(j for j, f in enumerate(fs) if f >= 0.8)
    # binary search over k returns the first k reaching the target when f(k) crosses it once
    if all(f < 0.8 for f in fs[:first]) and all(f >= 0.8 for f in fs[first:]):
        assert circuit == select(graph, Selection(rule="top-k", value=first))
    else:
        assert circuit in [select(graph, Selection(rule="top-k", value=j)) for j in range(first, n + 1)]


def test_selection_prunes_dangling_edges(model, data):
    graph = score(model, data, "eap", batch_size=5)
    circuit = select(graph, Selection(rule="threshold", value=0.0, absolute=False))
    nx = circuit.circuit().to_networkx()
    import networkx

    for node in nx.nodes:
        assert networkx.has_path(nx, "input", node) and networkx.has_path(nx, node, "logits")


def test_node_level_selection_keeps_edges_among_kept_components():
    m, ds = copy_head_model(), copy_dataset()
    graph = score(m, ds, "activation-patching")
    circuit = select(graph, Selection(rule="top-k", value=3))
    kept = {n.id for n in circuit.circuit_nodes}
    assert kept == {"input", "a0.h0", "a0.h1", "a1.h0", "logits"}
    for e in circuit.edges:
        assert e.in_circuit == (e.src in kept and e.dst in kept)
    assert all(e.score is None for e in graph.edges)


def test_edge_node_scores_are_sums_of_outgoing_edge_scores(model, data):
    graph = score(model, data, "eap", batch_size=5)
    for node in graph.nodes:
        if node.id != "logits":
            assert node.score == pytest.approx(sum(e.score for e in graph.edges if e.src == node.id))


def test_scoring_leaves_the_model_as_it_was(model, data):
    before = (model.cfg.use_split_qkv_input, model.cfg.use_attn_result, model.cfg.use_hook_mlp_in)
    score(model, data, "eap", batch_size=5)
    assert (model.cfg.use_split_qkv_input, model.cfg.use_attn_result, model.cfg.use_hook_mlp_in) == before
    assert all(p.requires_grad for p in model.parameters())
    assert not model.hook_dict["blocks.0.hook_resid_pre"]._forward_hooks


@pytest.mark.parametrize("kwargs", [{"attn_only": True}, {"parallel": True}])
def test_other_architectures_are_scored_and_evaluated(kwargs):
    m = random_model(n_layers=2, n_heads=2, seed=5, **kwargs)
    ds = toy_dataset(n=6, seed=6)
    exact = score(m, ds, "edge-patching")
    eap = score(m, ds, "eap")
    assert len(exact.edges) == Layout.for_model(m).n_edges
    assert _pearson([e.score for e in eap.edges], [e.score for e in exact.edges]) > 0.5
    ev = Evaluator(m, ds)
    assert ev.faithfulness(select(eap, Selection(rule="top-k", value=10**6))) == pytest.approx(1.0, abs=1e-6)


def test_registry_and_bad_input_errors(model, data):
    assert set(METHODS) == {"activation-patching", "eap", "eap-ig", "edge-patching", "relp", "path-patching", "acdc",
                            "attribution-graph"}
    with pytest.raises(UnknownKeyError, match="Did you mean 'eap-ig'"):
        score(model, data, "eap-gi")
    with pytest.raises(InvalidInputError, match="parameters: steps"):
        score(model, data, "eap-ig", stepz=3)
    with pytest.raises(InvalidInputError, match="positive integer"):
        score(model, data, "eap-ig", steps=0)
    with pytest.raises(UnknownKeyError, match="ablation"):
        score(model, data, "eap", ablation="resample")
    with pytest.raises(DiscoveryError, match="batch-size"):
        score(model, data, "eap", batch_size=0)
    graph = score(model, data, "eap", batch_size=10)
    with pytest.raises(InvalidInputError, match="top-k"):
        select(graph, Selection(rule="top-k", value=-1))
    with pytest.raises(InvalidInputError, match="faithfulness"):
        select(graph, Selection(rule="faithfulness", value=1.5), Evaluator(model, data))
    with pytest.raises(InvalidInputError, match="needs the model"):
        select(graph, Selection(rule="faithfulness", value=0.5))


def test_a_model_that_ignores_the_counterfactual_cannot_be_evaluated(model):
    ds = toy_dataset(n=4, seed=7)
    ds.corrupt = ds.clean.clone()
    with pytest.raises(DiscoveryError, match="faithfulness is undefined"):
        Evaluator(model, ds)


@pytest.mark.parametrize("norm", ["LN", "LNPre", "RMS", "RMSPre", None])
def test_eap_without_split_inputs_equals_eap_with_them(norm):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from catalog.discovery.attribution import attribution_scores

    cfg = random_model(n_layers=2, n_heads=2, seed=8).cfg.to_dict() | {"normalization_type": norm}
    m = HookedTransformer(HookedTransformerConfig(
        **{k: v for k, v in cfg.items() if k in HookedTransformerConfig.__dataclass_fields__}))
    ds = toy_dataset(n=6, seed=9)
    fast = np.array(attribution_scores(m, ds, batch_size=3, steps=2, split_qkv=False))
    reference = np.array(attribution_scores(m, ds, batch_size=3, steps=2, split_qkv=True))
    assert np.abs(reference).max() > 1e-3
    np.testing.assert_allclose(fast, reference, atol=1e-5 * np.abs(reference).max())


def test_block_work_counts_the_blocks_each_way_of_patching_really_runs():
    # Count (rows x positions) through every attention and MLP of the real passes: the quotient
    # is the floor the speed benchmark prints for batched patching against the loop.
    from catalog.discovery.methods.activation_patching import block_work, unchanged_prefix

    model = random_model(n_layers=3, n_heads=2, d_model=16, seed=5)
    data = _late_difference(toy_dataset(n=6, t=7, seed=6), at=3)
    start = unchanged_prefix(data.clean, data.corrupt, Ablation.COUNTERFACTUAL)
    assert start == 3
    counted = {"attn": 0.0, "mlp": 0.0}

    def count(kind: str):
        def hook(act, hook):
            counted[kind] += 0.5 * act.shape[0] * act.shape[1] / len(data.clean)

        return hook

    hooks = [(f"blocks.{layer}.attn.hook_z", count("attn")) for layer in range(3)]
    hooks += [(f"blocks.{layer}.mlp.hook_post", count("mlp")) for layer in range(3)]
    work = {}
    for way, kw in {"batched": {}, "loop": {"components_per_pass": 1, "share_prefix": False}}.items():
        counted.update(attn=0.0, mlp=0.0)
        with model.hooks(fwd_hooks=hooks):
            activation_patching(model, data, batch_size=6, **kw)
        work[way] = counted["attn"] + counted["mlp"]
    batched, loop = block_work(n_layers=3, n_heads=2, has_mlp=True, length=7, start=start, full_passes=2)
    assert (work["batched"], work["loop"]) == (batched, loop)
    assert batched / loop < 0.5  # the shared prefix and the skipped layers are really skipped

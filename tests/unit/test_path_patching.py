"""Path patching against a plain, slow reimplementation of each freezing convention.

The reference follows Wang et al.'s three steps literally with TransformerLens caches: freeze
heads at ``hook_z`` (every head's clean z, the sender's counterfactual z at its positions),
freeze or recompute MLPs at ``hook_mlp_out``, record each receiver *after* its projection or
LayerNorm (``hook_q``, ``ln2.hook_normalized``, ``ln_final.hook_normalized``), then patch those
records into a clean run. The library freezes whole attention outputs and patches receiver
inputs, so the two share no hooks.
"""

from __future__ import annotations

import pytest
import torch
from test_discovery_fixtures import random_model, toy_dataset

from catalog.discovery.evaluation import Evaluator
from catalog.discovery.methods.path_patching import (
    Query,
    parse_receiver,
    parse_sender,
    path_patch,
    role_positions,
)
from catalog.errors import InvalidInputError, UnknownKeyError


def gpt2_shaped(seed: int = 11):
    """A small random model with GPT-2's architecture (LN, gelu_new, learned positions)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=3, n_heads=4, d_model=32, d_head=8, d_mlp=128, d_vocab=12, n_ctx=8, act_fn="gelu_new",
        normalization_type="LN", positional_embedding_type="standard", seed=seed,
        model_name="gpt2-shaped-3l4h", device="cpu",
    )
    return HookedTransformer(cfg).eval()


def _mask(data, role: str | None) -> torch.Tensor:
    n, t = data.clean.shape
    if role is None:
        return torch.ones(n, t, dtype=torch.bool)
    m = torch.zeros(n, t, dtype=torch.bool)
    m[torch.arange(n), role_positions(data, role)] = True
    return m


def reference(model, data, sender: str, receivers: list[str], freeze: str) -> torch.Tensor:
    """Per-example ``m(clean) - m(patched)``, one query, step by step with plain hooks."""
    s, rs = parse_sender(sender), [parse_receiver(r) for r in receivers]
    model.set_use_split_qkv_input(True)  # per-head hook_q / hook_k / hook_v records
    try:
        with torch.no_grad():
            clean_logits, clean = model.run_with_cache(data.clean)
            _, corrupt = model.run_with_cache(data.corrupt)
            sm = _mask(data, s.role)
            hooks = []

            sender_head = tuple(int(x) for x in s.node[1:].split(".h")) if s.node.startswith("a") else None

            def freeze_z(z, hook):
                out = clean[hook.name].clone()
                if sender_head is not None and hook.name == f"blocks.{sender_head[0]}.attn.hook_z":
                    h = sender_head[1]
                    out[:, :, h][sm] = corrupt[hook.name][:, :, h][sm]
                return out

            def mlp_out(act, hook):
                out = clean[hook.name].clone() if freeze == "direct" else act.clone()
                if s.node == f"m{hook.name.split('.')[1]}":
                    out[sm] = corrupt[hook.name][sm]
                return out

            def embed(act, hook):
                out = act.clone()
                out[sm] = corrupt[hook.name][sm]
                return out

            for layer in range(model.cfg.n_layers):
                hooks.append((f"blocks.{layer}.attn.hook_z", freeze_z))
                if not model.cfg.attn_only:
                    hooks.append((f"blocks.{layer}.hook_mlp_out", mlp_out))
            if s.node == "input":
                hooks += [("hook_embed", embed), ("hook_pos_embed", embed)]

            targets = []  # (hook name, head or None, positions mask)
            for r in rs:
                rm = _mask(data, r.role)
                if r.node == "logits":
                    targets.append(("ln_final.hook_normalized", None, rm))
                elif r.node.startswith("m"):
                    targets.append((f"blocks.{r.node[1:]}.ln2.hook_normalized", None, rm))
                else:
                    layer, head = (int(x) for x in r.node[1:].split(".h"))
                    targets += [(f"blocks.{layer}.attn.hook_{x}", head, rm) for x in r.qkv]
            recorded = {}

            def keep(act, hook):
                recorded[hook.name] = act.clone()

            model.run_with_hooks(data.clean, fwd_hooks=hooks + [(name, keep) for name, _, _ in targets])

            def put(act, hook):
                out = act.clone()
                for name, head, rm in targets:
                    if name == hook.name:
                        if head is None:
                            out[rm] = recorded[name][rm]
                        else:
                            out[:, :, head][rm] = recorded[name][:, :, head][rm]
                return out

            patched = model.run_with_hooks(data.clean, fwd_hooks=[(name, put) for name in {t[0] for t in targets}])
            return (data.metric(clean_logits) - data.metric(patched)).double()
    finally:
        model.set_use_split_qkv_input(False)


QUESTIONS = [
    ("a0.h1", ["logits"]),
    ("a1.h2@END", ["logits"]),
    ("m0", ["logits"]),
    ("input@0", ["a1.h0<kv>"]),
    ("a0.h3", ["a2.h1<k>", "a2.h2<v>"]),
    ("a0.h0@0", ["a1.h3", "m1"]),
    ("m1", ["a2.h0<v>", "logits"]),
    ("a1.h1", ["m1", "a2.h3<q>"]),
]


@pytest.fixture(scope="module")
def setup():
    return gpt2_shaped(), toy_dataset(n=10, t=6, seed=12)


@pytest.mark.parametrize("freeze", ["wang", "direct"])
def test_path_patching_equals_the_step_by_step_reference_on_a_random_gpt2_shaped_model(setup, freeze):
    model, data = setup
    queries = [Query(parse_sender(s), tuple(parse_receiver(r) for r in rs)) for s, rs in QUESTIONS]
    effects, _ = path_patch(model, data, queries, freeze, batch_size=4, max_rows=12)  # chunked passes
    for q, (s, rs) in zip(effects, QUESTIONS):
        ref = reference(model, data, s, rs, freeze)
        assert float(ref.abs().max()) > 1e-4, (s, rs)  # not a comparison between zeros
        torch.testing.assert_close(q, ref, atol=2e-5, rtol=1e-4, msg=f"{s} -> {rs} ({freeze})")


def test_the_conventions_differ_exactly_when_mlps_lie_on_the_path(setup):
    model, data = setup
    q = [Query(parse_sender("a0.h1"), (parse_receiver("logits"),)),
         Query(parse_sender("a2.h1"), (parse_receiver("logits"),))]
    wang, _ = path_patch(model, data, q, "wang")
    direct, _ = path_patch(model, data, q, "direct")
    assert not torch.allclose(wang[0], direct[0], atol=1e-4)  # m0, m1 and m2 recomputed under wang
    # a2.h1's write reaches the logits through m2 only under wang; the two still differ by m2
    assert (wang[1] - direct[1]).abs().max() > 0
    # with every head frozen, a change away from the read position cannot reach the logits
    away, _ = path_patch(model, data, [Query(parse_sender("a1.h2@2"), (parse_receiver("logits"),))], "wang")
    assert float(away.abs().max()) == 0.0


def test_direct_path_to_one_receiver_is_patching_that_edge():
    model, data = random_model(n_layers=2, n_heads=3, d_model=24, seed=3), toy_dataset(n=10, t=6, seed=4)
    ev = Evaluator(model, data, batch_size=5)
    lay = ev.layout
    pairs = [("a0.h1", "logits", lay.head_source(0, 1), lay.logits_dest),
             ("m0", "a1.h2<k>", lay.mlp_source(0), lay.head_dest(1, "k", 2)),
             ("input", "a1.h1<v>", 0, lay.head_dest(1, "v", 1))]
    effects, _ = path_patch(model, data, [Query(parse_sender(s), (parse_receiver(r),)) for s, r, _, _ in pairs],
                            "direct", batch_size=5)
    for row, (_, _, si, di) in zip(effects, pairs):
        mask = torch.zeros(lay.n_sources, lay.n_destinations, dtype=torch.bool)
        mask[si, di] = True
        edge = ev.metric_clean - ev.metric_of_masks(mask.unsqueeze(0))[0]  # the engine's edge patch
        assert float(row.mean()) == pytest.approx(edge, abs=1e-5) and abs(edge) > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["wang", "direct"])
def test_path_patching_equals_the_reference_on_the_embedded_model(freeze):
    from catalog.models import load_model
    from catalog.tasks import get_task

    loaded = load_model(None, device="cpu")
    data = get_task("ioi").build(loaded, n=12, seed=3)
    questions = [("a1.h0", ["logits"]), ("m0", ["a1.h1@END<k>"]), ("a0.h1@END", ["a1.h3", "logits"]),
                 ("a2.h1", ["a3.h0<q>", "m3"])]
    queries = [Query(parse_sender(s), tuple(parse_receiver(r) for r in rs)) for s, rs in questions]
    effects, _ = path_patch(loaded.model, data, queries, freeze, batch_size=5)
    for q, (s, rs) in zip(effects, questions):
        ref = reference(loaded.model, data, s, rs, freeze)
        torch.testing.assert_close(q, ref, atol=1e-4, rtol=1e-4, msg=f"{s} -> {rs} ({freeze})")
    assert float(effects[0].abs().mean()) > 1e-3


def test_parsing_and_clear_errors(setup):
    model, data = setup
    assert str(parse_receiver("a2.h1@END<q>")) == "a2.h1@END<q>" and str(parse_receiver("a2.h1")) == "a2.h1"
    assert parse_receiver("a2.h1<kv>").qkv == ("k", "v")
    for bad in ("logits", "a1.h0<q>", "a1.h0->m2", "x3"):
        with pytest.raises(InvalidInputError):
            parse_sender(bad)
    with pytest.raises(InvalidInputError, match="Only a head"):
        parse_receiver("m1<q>")

    def ask(s: str, r: str) -> None:
        path_patch(model, data, [Query(parse_sender(s), (parse_receiver(r),))])

    with pytest.raises(InvalidInputError, match="a0.h7 does not exist: the model has heads 0-3"):
        ask("a0.h7", "logits")
    with pytest.raises(InvalidInputError, match="m5 does not exist: the model has layers 0-2"):
        ask("a0.h1", "m5")
    with pytest.raises(InvalidInputError, match="not downstream"):
        ask("a2.h0", "a1.h1<q>")
    with pytest.raises(InvalidInputError, match="Unknown role 'S2'"):
        ask("a0.h0@S2", "logits")
    with pytest.raises(InvalidInputError, match="past the end"):
        ask("a0.h0@9", "logits")
    with pytest.raises(UnknownKeyError, match="freezing convention"):
        path_patch(model, data, [Query(parse_sender("a0.h0"), (parse_receiver("logits"),))], "strict")

"""ACDC: recovers a planted circuit, its speculative batching equals the plain loop, and its
objective agrees with the evaluation engine's."""

from __future__ import annotations

import pytest
import torch
from test_discovery_fixtures import copy_dataset, copy_head_model, random_model, toy_dataset

from catalog.discovery.evaluation import Evaluator
from catalog.discovery.layout import Layout
from catalog.discovery.methods.acdc import acdc
from catalog.errors import InvalidInputError


def kept_edges(model, kept) -> set[str]:
    lay = Layout.for_model(model)
    out = set()
    for s, d in lay.edges():
        if kept[s][d]:
            src, dst, qkv = lay.edge_key(s, d)
            out.add(f"{src}->{dst}" + (f"<{qkv}>" if qkv else ""))
    return out


def test_acdc_recovers_the_planted_copy_circuit_and_the_threshold_decides_the_rest():
    model, data = copy_head_model(), copy_dataset()
    kept, scores, info = acdc(model, data, threshold=0.05)
    assert kept_edges(model, kept) == {"input->a1.h0<v>", "a1.h0->logits"}
    assert 0 < info["objective_final"] < 0.05 and info["objective_full"] == pytest.approx(0.0, abs=1e-9)
    # the distractor heads add 0.1 of the first token to a1.h0's value: a real effect that a
    # smaller threshold keeps, through both layer-0 heads
    small = kept_edges(model, acdc(model, data, threshold=0.001)[0])
    assert {"input->a1.h0<v>", "a1.h0->logits", "a0.h0->a1.h0<v>", "input->a0.h0<v>"} <= small
    assert "a1.h1->logits" not in small  # attends to itself at the last position: no effect


def test_speculative_passes_give_the_plain_sequential_result():
    model, data = random_model(n_layers=2, n_heads=3, d_model=24, seed=3), toy_dataset(n=10, t=6, seed=4)
    plain = acdc(model, data, threshold=0.002, speculate=1)
    fast = acdc(model, data, threshold=0.002, speculate=16)
    assert plain[0] == fast[0] and 0 < sum(map(sum, plain[0])) < Layout.for_model(model).n_edges
    for row_a, row_b in zip(plain[1], fast[1]):
        assert [a is None for a in row_a] == [b is None for b in row_b]
        assert [a for a in row_a if a is not None] == pytest.approx([b for b in row_b if b is not None], abs=1e-6)


def test_task_objective_equals_the_evaluators_metric_of_the_chosen_circuit():
    model, data = random_model(n_layers=2, n_heads=2, seed=5), toy_dataset(n=8, seed=6)
    kept, _, info = acdc(model, data, threshold=0.05, objective="task", batch_size=4)
    ev = Evaluator(model, data, batch_size=4)
    patch = ev._valid & ~torch.tensor(kept)
    assert info["objective_final"] == pytest.approx(ev.metric_of_masks(patch.unsqueeze(0))[0], abs=1e-5)
    assert info["objective_full"] == pytest.approx(ev.metric_clean, abs=1e-5)


def test_bad_parameters_are_one_line_errors():
    model, data = copy_head_model(), copy_dataset(n=4)
    with pytest.raises(InvalidInputError, match="kl, task"):
        acdc(model, data, objective="logprob")
    with pytest.raises(InvalidInputError, match="threshold"):
        acdc(model, data, threshold=-1.0)

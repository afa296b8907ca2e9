"""Position-resolved discovery on tiny seeded models: per-role scores against an independent
per-position patching loop, what collapsing roles gives back, skipped positions, evaluation."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
from test_discovery_fixtures import ToyDataset, per_position_reference, random_model, toy_dataset

from catalog.discovery import score, select
from catalog.discovery.evaluation import Evaluator
from catalog.discovery.methods.activation_patching import activation_patching
from catalog.discovery.positions import (
    RoleEvaluator,
    activation_patching_by_role,
    attribution_by_role,
    collapse,
    scored_roles,
)
from catalog.errors import InvalidInputError
from catalog.graph import CircuitGraph
from catalog.naming import component_of
from catalog.provenance import Ablation, Selection


@dataclass
class RoleToy(ToyDataset):
    """The toy dataset with a role for each position; roles move between positions per example."""

    role_names: tuple[str, ...] = ()
    role_ids: torch.Tensor | None = None


def with_roles(data: ToyDataset, seed: int = 0) -> RoleToy:
    """Roles R0..R{T-1}: END at each read position, the others shuffled per example, so a role
    sits at a different position in different examples (as slots do across templates)."""
    n, t = data.clean.shape
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.cat([torch.randperm(t - 1, generator=g), torch.tensor([t - 1])]) for _ in range(n)])
    names = tuple(f"R{i}" for i in range(t - 1)) + ("END",)
    return RoleToy(data.clean, data.corrupt, data.positions, data.answers, data.wrong,
                   role_names=names, role_ids=ids)


@pytest.fixture(scope="module")
def model():
    return random_model(n_layers=2, n_heads=3, d_model=24, seed=3)


@pytest.fixture(scope="module")
def data():
    toy = toy_dataset(n=10, t=6, seed=4)
    toy.corrupt[:, 1:] = torch.randint(2, 12, toy.corrupt[:, 1:].shape, generator=torch.Generator().manual_seed(1))
    return with_roles(toy)


@pytest.mark.parametrize("ablation", list(Ablation))
def test_activation_patching_by_role_equals_an_independent_per_position_loop(model, data, ablation):
    got = activation_patching_by_role(model, data, ablation, batch_size=4)
    ref = per_position_reference(model, data, ablation.value)
    assert got.keys() == ref.keys()
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-5), key
    assert max(abs(v) for v in ref.values()) > 1e-3


def test_collapsed_activation_patching_is_the_sum_of_single_position_patches(model, data):
    """What holds for activation patching: summed over roles, a component's scores are the sum
    of its single-position patching effects; that equals patching all positions at once only
    where those effects do not interact. For the last layer they cannot: its output at one
    position reaches the logits at that position only, so only END counts."""
    by_role = collapse(activation_patching_by_role(model, data, batch_size=5))
    whole = activation_patching(model, data, batch_size=5)
    last = [k for k in whole if k.startswith(("a1.", "m1"))]
    for key in last:
        assert by_role[key] == pytest.approx(whole[key], abs=1e-5), key
    earlier = [k for k in whole if k not in last]
    assert any(abs(by_role[k] - whole[k]) > 1e-4 for k in earlier)  # interactions are real, not 0


@pytest.mark.parametrize("steps", [1, 3])
def test_attribution_by_role_sums_exactly_to_the_all_position_node_scores(model, data, steps):
    by_role = attribution_by_role(model, data, batch_size=4, steps=steps)
    graph = score(model, data, "eap" if steps == 1 else "eap-ig", batch_size=4,
                  **({} if steps == 1 else {"steps": steps}))
    nodes = {n.id: n.score for n in graph.nodes if n.score is not None and n.id not in ("input",)}
    summed = collapse(by_role)
    assert summed.keys() == nodes.keys()
    for key, value in nodes.items():
        assert summed[key] == pytest.approx(value, abs=1e-5, rel=1e-4), key


def test_positions_before_the_first_difference_are_skipped(model):
    toy = toy_dataset(n=6, t=6, seed=2)
    toy.corrupt[:] = toy.clean
    toy.corrupt[:, 3] = (toy.clean[:, 3] + 1 - 2) % 10 + 2  # differ from position 3 on
    names = ("BOS", "P1", "P2", "P3", "P4", "END")
    data = RoleToy(toy.clean, toy.corrupt, toy.positions, toy.answers, toy.wrong, role_names=names,
                   role_ids=torch.arange(6).expand(6, 6).clone())
    roles, _ = scored_roles(data, Ablation.COUNTERFACTUAL)
    assert roles == ["P3", "P4", "END"]
    got = activation_patching_by_role(model, data)
    assert {k.split("@")[1] for k in got} == {"P3", "P4", "END"}
    assert len(scored_roles(data, Ablation.MEAN)[0]) == 6  # nothing is identical under mean ablation


def test_a_position_resolved_graph_selects_and_evaluates(model, data):
    graph = score(model, data, "activation-patching", batch_size=5, positions=True)
    assert not graph.edges and all(n.role for n in graph.nodes)
    ev = RoleEvaluator(model, data, batch_size=5)
    full = select(graph, Selection(rule="top-k", value=len(graph.nodes)))
    empty = select(graph, Selection(rule="top-k", value=0))
    assert ev.faithfulness(full) == pytest.approx(1.0, abs=1e-6)
    assert ev.faithfulness(empty) == pytest.approx(0.0, abs=1e-6)
    top = select(graph, Selection(rule="top-k", value=5))
    assert len(top.circuit_nodes) == 5
    # A circuit holding every role of some components is that component circuit.
    comps = {"a0.h1", "m0", "a1.h2"}
    by_role = graph.with_selection(()).restrict_to(n.id for n in graph.nodes)
    kept = CircuitGraph(graph.shape, tuple(replace(n, in_circuit=component_of(n.id) in comps)
                                           for n in by_role.nodes))
    whole = score(model, data, "activation-patching", batch_size=5)
    component_circuit = select(whole, Selection(rule="top-k", value=len(comps)))
    component_circuit = component_circuit.with_selection(
        e.key for e in whole.edges if {e.src, e.dst} <= comps | {"input", "logits"})
    edge_ev = Evaluator(model, data, batch_size=5)
    # Compare the metrics themselves: the edge evaluator's empty circuit also patches the input
    # embeddings (the counterfactual run), the role evaluator's leaves them clean, so the two
    # normalise differently whenever the read token differs between clean and corrupt (here).
    expected = edge_ev.metric_of_masks(edge_ev.patch_mask(component_circuit).unsqueeze(0))[0]
    f = ev.faithfulness(kept)
    assert ev.metric_ablated + f * (ev.metric_clean - ev.metric_ablated) == pytest.approx(expected, abs=1e-5)


def test_edge_patching_has_no_per_role_version(model, data):
    with pytest.raises(InvalidInputError, match="cannot score positions"):
        score(model, data, "edge-patching", positions=True)


def test_position_resolved_selections_are_checked_by_their_nodes(model, data):
    from catalog.discovery.selection import check_selected
    from catalog.errors import DiscoveryError

    graph = score(model, data, "eap", batch_size=5, positions=True)
    top = select(graph, Selection(rule="top-k", value=3))
    assert check_selected(graph, top, Selection(rule="top-k", value=3)) == []
    with pytest.raises(DiscoveryError, match="keeps no node"):
        check_selected(graph, select(graph, Selection(rule="top-k", value=0)), Selection(rule="top-k", value=0))
    with pytest.raises(InvalidInputError, match="--greedy"):
        select(graph, Selection(rule="top-k", value=3, greedy=True))

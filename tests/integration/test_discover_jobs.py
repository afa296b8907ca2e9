"""Discovery jobs against a real catalog: runs with status, stored circuits, failures, Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_discovery_fixtures import COPY_HEAD, copy_dataset, copy_head_model

from catalog import jobs
from catalog.errors import UnknownKeyError
from catalog.provenance import Selection, Source


def test_a_job_stores_its_circuit_with_provenance_and_metrics(catalog):
    circuit = jobs.discover(catalog, "copy", model=copy_head_model(), method="eap", dataset=copy_dataset(),
                            selection=Selection(rule="top-k", value=2), seed=3, progress=False,
                            name="copy circuit", tags=("toy",))
    stored = catalog.get(circuit.id)
    assert stored.graph == circuit.graph and stored.graph.heads == {COPY_HEAD}
    assert stored.name == "copy circuit" and stored.tags == ("toy",)
    p = stored.provenance
    assert (p.source, p.method, p.seed, p.dataset_size, p.metric) == (Source.DISCOVERY, "eap", 3, 16, "logit_diff")
    assert p.selection.describe() == "top-k 2 by |score|" and p.method_params == {"batch_size": 32, "dtype": "float32"}
    assert p.library_versions["torch"]
    m = stored.metrics
    assert 0.75 < m["faithfulness"] <= 1.0 and 0 < m["cpr"] < 1 and m["cmd"] >= 0
    assert len(m["faithfulness_curve"]) == 10 and set(m["timings"]) >= {"score", "select", "evaluate"}
    assert len(stored.graph.edges) == len(stored.graph.circuit_edges) + sum(not e.in_circuit for e in stored.graph.edges)
    run = catalog.get_run(circuit.run_id)
    assert run.status == "done" and run.circuit_ids == (circuit.id,) and run.seconds is not None


def test_default_selection_reaches_the_target_faithfulness(catalog):
    circuit = jobs.discover(catalog, "copy", model=copy_head_model(), method="eap-ig", dataset=copy_dataset(),
                            progress=False)
    assert circuit.provenance.selection.describe() == "faithfulness 0.8 by |score|"
    assert circuit.metrics["faithfulness"] >= 0.8
    assert COPY_HEAD in circuit.graph.heads


def test_several_methods_in_one_call_are_separate_runs(catalog):
    # top-k 2: the copy circuit's two edges (one edge alone would leave an empty, refused circuit)
    out = jobs.discover_many(catalog, ["copy"], ["activation-patching", "eap"], model=copy_head_model(),
                             dataset=copy_dataset(), selection=Selection(rule="top-k", value=2), progress=False)
    assert [c.provenance.method for c in out] == ["activation-patching", "eap"]
    assert [r.status for r in catalog.list_runs()] == ["done", "done"]
    assert len(catalog.circuits()) == 2


def test_an_error_marks_the_run_failed_and_stores_nothing(catalog, monkeypatch):
    ds = copy_dataset()

    def broken(self, logits):
        raise RuntimeError("metric exploded")

    monkeypatch.setattr(type(ds), "metric", broken)
    with pytest.raises(RuntimeError, match="metric exploded"):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="eap", dataset=ds, progress=False)
    (run,) = catalog.list_runs()
    assert run.status == "failed" and "metric exploded" in run.error and run.circuit_ids == ()
    assert catalog.circuits() == []


def test_ctrl_c_marks_the_run_interrupted_and_stores_nothing(catalog, monkeypatch):
    from catalog import discovery

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(discovery, "select", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="eap", dataset=copy_dataset(), progress=False)
    (run,) = catalog.list_runs()
    assert run.status == "interrupted" and "interrupt" in run.error.lower()
    assert catalog.circuits() == []


def test_bad_method_is_refused_before_any_run_starts(catalog):
    with pytest.raises(UnknownKeyError, match="Did you mean 'eap'"):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="eapp", dataset=copy_dataset(), progress=False)
    assert catalog.list_runs() == []


def test_a_job_keeps_its_heads_attention_patterns(catalog):
    import torch

    model, ds = copy_head_model(), copy_dataset()
    circuit = jobs.discover(catalog, "copy", model=model, method="eap", dataset=ds,
                            selection=Selection(rule="top-k", value=2), progress=False)
    kept = catalog.attention(circuit.id)
    assert kept.heads == (COPY_HEAD,) and len(kept.prompts) == 4
    layer, head = (int(x) for x in COPY_HEAD[1:].split(".h"))
    _, cache = model.run_with_cache(ds.clean[:4])
    for i, p in enumerate(kept.prompts):
        end = int(ds.positions[i]) + 1
        want = cache[f"blocks.{layer}.attn.hook_pattern"][i, head, :end, :end]
        got = torch.tensor(p.heads[COPY_HEAD], dtype=want.dtype)
        assert p.read_position == end - 1 and len(p.tokens) == end and p.prompt == ds.prompts[i]
        assert torch.allclose(got, want, atol=6e-4)  # stored to three decimals
    catalog.delete(circuit.id)
    with pytest.raises(Exception, match="No circuit"):
        catalog.attention(circuit.id)


@pytest.mark.parametrize("method, params", [("acdc", {"threshold": 0.05}), ("path-patching", {"threshold": 0.3})])
def test_a_method_that_selects_keeps_its_circuit_and_records_how(catalog, method, params):
    circuit = jobs.discover(catalog, "copy", model=copy_head_model(), method=method, dataset=copy_dataset(),
                            params=params, progress=False)
    stored = catalog.get(circuit.id)
    assert {e.id for e in stored.graph.circuit_edges} == {"input->a1.h0<v>", "a1.h0->logits"}
    assert stored.graph.shape.name == "copy-head-2l"
    p = stored.provenance
    assert p.method == method and p.selection.rule.value == "given" and p.method_params["threshold"] == params["threshold"]
    assert stored.metrics["faithfulness"] > 0.75  # the 0.1-gain distractor paths are left out


def test_a_selection_rule_with_only_selecting_methods_is_refused(catalog):
    from catalog.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="selects its own circuit"):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="acdc", dataset=copy_dataset(),
                      selection=Selection(rule="top-k", value=2), progress=False)
    assert catalog.list_runs() == []


def test_a_selection_that_keeps_nothing_fails_the_run_and_says_what_to_pass(catalog):
    from catalog.errors import DiscoveryError

    with pytest.raises(DiscoveryError, match="empty circuit.*--greedy"):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="eap", dataset=copy_dataset(),
                      selection=Selection(rule="threshold", value=1e9), progress=False)
    assert [r.status for r in catalog.list_runs()] == ["failed"] and catalog.circuits() == []


def test_a_greedy_top_k_circuit_is_connected_and_recorded_as_greedy(catalog):
    said: list[str] = []
    circuit = jobs.discover(catalog, "copy", model=copy_head_model(), method="eap", dataset=copy_dataset(),
                            selection=Selection(rule="top-k", value=2, greedy=True), progress=False,
                            notify=said.append)
    stored = catalog.get(circuit.id)
    assert stored.provenance.selection.greedy and stored.provenance.selection.describe().startswith("greedy")
    assert stored.graph.prune_dangling().circuit_edges == stored.graph.circuit_edges  # nothing dangles
    assert COPY_HEAD in stored.graph.heads and not any(m.startswith("warning") for m in said)


def test_a_selecting_method_that_keeps_nothing_fails_the_run_and_says_what_to_pass(catalog):
    from catalog.errors import DiscoveryError

    with pytest.raises(DiscoveryError, match="kept no edge.*--param threshold"):
        jobs.discover(catalog, "copy", model=copy_head_model(), method="acdc", dataset=copy_dataset(n=4),
                      params={"threshold": 1e9}, progress=False)
    assert [r.status for r in catalog.list_runs()] == ["failed"] and catalog.circuits() == []

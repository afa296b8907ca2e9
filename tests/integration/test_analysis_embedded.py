"""Head roles, interventions and the knockout matrix on the embedded model, end to end.

The circuits are written by hand over the embedded model's shape (the heads discovery finds at
END for each task), so these tests do not depend on a discovery run.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from catalog.graph import CircuitGraph  # noqa: E402
from catalog.provenance import Circuit, Provenance, Source  # noqa: E402

pytestmark = pytest.mark.slow

HEADS = {"ioi": ["a1.h0", "a1.h1", "a1.h2", "a1.h3"], "colored-objects": ["a1.h0", "a1.h1", "a1.h3"]}


@pytest.fixture(scope="module")
def loaded():
    from catalog.models import load_model

    return load_model(None, device="cpu")


@pytest.fixture
def cat(tmp_path, loaded):
    from catalog.store import Catalog

    cat = Catalog.open(str(tmp_path / "catalog.db"))
    for task, heads in HEADS.items():
        edges = [("input", h, "q", 1.0) for h in heads] + [(h, "logits", None, 1.0) for h in heads]
        graph = CircuitGraph.build(loaded.shape, ["input", *heads, "logits"], edges)
        cat.add(Circuit(graph=graph, task=task, provenance=Provenance(source=Source.IMPORT)))
    return cat


def test_the_knockout_diagonal_shows_damage(cat, loaded):
    from catalog.analysis.knockout import knockout

    m = knockout(cat, ["ioi", "colored-objects"], n=32, loaded=loaded, controls=2)
    for task in m.tasks:
        cell = m.cell(task, task)
        assert cell.before.accuracy > 0.9
        assert cell.metric_drop > 0.5, cell
        assert cell.after.accuracy < cell.before.accuracy
    assert m.cell("ioi", "colored-objects").components == tuple(HEADS["ioi"])
    assert m.controls == ("random-3", "random-4")
    assert len(m.cell("random-4", "ioi").components) == 8  # two sets of four heads


def test_position_resolved_circuits_knock_out_by_component(tmp_path, loaded):
    """Roles are a task's own (IOI has no QOBJ): each row ablates its circuit's components, the
    same set in every column, ranked by their best node."""
    from catalog.analysis.knockout import knockout
    from catalog.store import Catalog

    cat = Catalog.open(str(tmp_path / "positions.db"))
    scored = {"ioi": {"a0.h1@S2": 3.0, "a1.h0@END": 2.0, "a1.h0@S2": 1.5, "m0@S2": 4.0},
              "colored-objects": {"a0.h3@QOBJ": 3.0, "a1.h1@END": 2.0, "m0@QOBJ": 4.0}}
    for task, scores in scored.items():
        graph = CircuitGraph.build(loaded.shape, list(scores), node_scores=scores)
        cat.add(Circuit(graph=graph, task=task, provenance=Provenance(source=Source.IMPORT)))
    m = knockout(cat, ["ioi", "colored-objects"], n=16, loaded=loaded)
    for measured in m.tasks:
        assert m.cell("ioi", measured).components == ("a0.h1", "a1.h0")
        assert m.cell("colored-objects", measured).components == ("a0.h3", "a1.h1")
    assert knockout(cat, ["colored-objects", "ioi"], top_k=1, with_mlps=True, n=16,
                    loaded=loaded).cell("ioi", "ioi").components == ("a0.h1", "m0")
    assert m.cell("ioi", "ioi").metric_drop > 0.1


def test_a_task_with_options_knocks_out_its_own_circuit(cat, loaded):
    """``ioi:variant=third-name`` is its own task in the catalog: its row ablates its circuit, not
    plain IOI's; options with no circuit of their own fall back to the plain task's."""
    from catalog.analysis.knockout import knockout

    graph = CircuitGraph.build(loaded.shape, ["a0.h2@C1", "a1.h3@END"], node_scores={"a0.h2@C1": 2.0, "a1.h3@END": 1.0})
    cat.add(Circuit(graph=graph, task="ioi:variant=third-name", provenance=Provenance(source=Source.IMPORT)))
    m = knockout(cat, ["ioi", "ioi:variant=third-name", "ioi:counterfactual=s2"], n=8, loaded=loaded)
    assert m.cell("ioi", "ioi").components == tuple(HEADS["ioi"])
    assert m.cell("ioi:variant=third-name", "ioi").components == ("a0.h2", "a1.h3")
    assert m.cell("ioi:counterfactual=s2", "ioi").components == tuple(HEADS["ioi"])


def test_ablating_mlp0_at_s2_takes_ioi_to_chance_and_is_stored(cat, loaded):
    from catalog.analysis.interventions import intervene

    r = intervene(cat, "ioi", model=loaded, ablate=["m0@S2"], n=64)
    assert r.before.accuracy > 0.9 and r.after.accuracy < 0.75
    assert r.after.metric < 0.2 * r.before.metric
    untouched = intervene(cat, "ioi", model=loaded, ablate=["m0@IO"], n=64, store=False)
    assert untouched.after.metric == pytest.approx(untouched.before.metric, rel=0.05)
    assert [x.ablate for x in cat.interventions(cat.resolve("ioi"))] == [("m0@S2",)]


def test_roles_are_measured_stored_and_shown(cat, loaded):
    from catalog.analysis.roles import measure_roles

    report = measure_roles(cat, "ioi", model=loaded, n=64)
    by_head = {h.node: h for h in report.heads}
    # On the embedded model the layer-1 heads read S2 from END (the mechanism the knockout and
    # position-resolved patching point to), not IO.
    assert by_head["a1.h0"].evidence.attention["END"]["S2"] > 0.3
    assert by_head["a1.h0"].evidence.attention["END"]["IO"] < 0.1
    assert "attends END->S2" in by_head["a1.h0"].label
    assert cat.roles(cat.resolve("ioi")) == report
    from cli.app import app

    db = cat.url.replace("sqlite:///", "")
    shown = CliRunner().invoke(app, ["--db", db, "show", "ioi"])
    assert shown.exit_code == 0, shown.output
    assert "head roles of circuit" in shown.stdout and "END->S2" in shown.stdout
    assert "attends" in shown.stdout  # the label column (wrapped at narrow terminal widths)
    data = json.loads(CliRunner().invoke(app, ["--db", db, "show", "ioi", "--json"]).stdout)
    assert [h["node"] for h in data["head_roles"]["heads"]] == HEADS["ioi"]
    assert data["interventions"] == []


def _repair(*args: str):
    from cli.app import app

    return CliRunner().invoke(app, ["repair", "--task", "colored-objects:n_objects=5", "--from", "ioi",
                                    "--n", "16", *args])


def test_repair_reports_consistent_numbers_as_text_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_DB", str(tmp_path / "catalog.db"))
    heads = ["--head", "a1.h0", "--head", "a1.h1", "--head", "a0.h3"]
    result = _repair(*heads, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert [c["node"] for c in r["candidates"]] == ["a1.h0", "a1.h1", "a0.h3"]
    for outcome in (r["before"], r["after"], r["working_outcome"], *r["candidates"]):
        assert 0 <= outcome["accuracy"] <= 1 and round(outcome["accuracy"] * 16, 6).is_integer()
    assert r["working_outcome"]["accuracy"] > 0.9  # the working task works
    # Chosen: the candidates attending the working task's wrong answers most, at least 0.2 of END.
    masses = {c["node"]: sum(c["working"].values()) for c in r["candidates"]}
    assert set(r["steered_to"]) == {"ALT_COLOR", "OPT_COLOR", "OPT2_COLOR", "OPT3_COLOR"}
    assert set(r["candidates"][0]["working"]) == {"S1", "S2"}
    assert r["chosen"] == sorted((h for h, m in masses.items() if m >= 0.2), key=lambda h: -masses[h])
    assert "a1.h0" in r["chosen"] and "a0.h3" not in r["chosen"]  # END->S2 heads on IOI; a0.h3 is not one
    assert r["after"] != r["before"]  # steering changed the failing task's metric

    text = _repair(*heads)
    assert text.exit_code == 0, text.output
    assert f"steered together: {', '.join(r['chosen'])}" in text.stdout
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    assert f"accuracy {pct(r['before']['accuracy'])} -> {pct(r['after']['accuracy'])}" in text.stdout
    assert text.stderr == ""

    together = json.loads(_repair("--head", "a0.h3", "--together", "--json").stdout)
    assert together["chosen"] == ["a0.h3"]  # named heads are steered as given


@pytest.mark.parametrize("args, message", [
    (["--head", "a9.h0"], "a9.h0 does not exist in the model: catalog-default has 4 layers x 4 heads"),
    (["--head", "a1.h0@END"], "give heads as aL.hH, without a position"),
    (["--from", "greater-than"], "Task greater-than names no wrong-answer tokens"),
])
def test_repair_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("CATALOG_DB", str(tmp_path / "catalog.db"))
    result = _repair(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line

"""`catalog discover --method attribution-graph`: stored feature circuits, per-prompt graphs kept
with the run, the circuit-tracer round trip, and the drawing.

One discovery per module on the embedded model with a seeded random transcoder set (3 IOI
prompts, then one bare prompt): what is checked is the plumbing, not the features' meaning.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
import torch

from catalog import jobs
from catalog.formats import read_circuits, write_circuit
from catalog.naming import NodeKind, parse_node
from catalog.store import Catalog
from catalog.transcoders.model import Transcoder, TranscoderSet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tc_folder(tmp_path_factory):
    torch.manual_seed(0)
    layers = [Transcoder(128, 256, 8) for _ in range(4)]
    labels = {f"{layer}.{i}": {"label": f"promotes word {layer}-{i}"} for layer in range(4) for i in range(256)}
    labels["0.1"] = {"label": "feature zero-one"}
    tset = TranscoderSet("catalog-default", layers, labels=labels)
    folder = tmp_path_factory.mktemp("tc") / "catalog-default"
    tset.save(folder)
    return folder


@pytest.fixture(scope="module")
def discovered(tmp_path_factory, tc_folder):
    from catalog.models import load_model

    cat = Catalog.open(str(tmp_path_factory.mktemp("db") / "c.db"))
    loaded = load_model(None)
    task = jobs.discover(cat, "ioi", model=loaded, method="attribution-graph", n=3, progress=False,
                         params={"transcoders": str(tc_folder), "prompts": 3, "node_threshold": 0.6})
    prompt = jobs.discover(cat, None, model=loaded, method="attribution-graph", progress=False,
                           prompt="When Mary and John went to the store, John gave a drink to",
                           params={"transcoders": str(tc_folder)})
    from catalog.tasks import get_task

    ds = get_task("ioi").build(loaded, n=3, seed=0)  # the dataset the job built (same seed)
    roles = [[ds.role_names[int(r)] for r in ds.role_ids[k]] for k in range(3)]
    return cat, task, prompt, roles


def test_a_task_stores_its_feature_circuit_and_each_prompt_graph_with_the_run(discovered):
    cat, task, _, roles = discovered
    run = cat.get_run(task.run_id)
    assert len(run.circuit_ids) == 4 and run.circuit_ids[-1] == task.id  # 3 prompt graphs, then the aggregate
    assert cat.resolve("ioi", model="catalog-default") == task.id  # the task's newest is the aggregate
    parts = [cat.get(i) for i in run.circuit_ids[:-1]]
    assert all(jobs.PART_TAG in p.tags and p.name == f"ioi #{k}" for k, p in enumerate(parts))
    stored = cat.get(task.id)
    values = stored.provenance.method_params["attribution"]["nodes"]
    feats = [n for n in stored.graph.nodes if n.kind is NodeKind.FEATURE]
    assert feats and all(n.role is not None and n.position is None for n in feats)  # collapsed by role
    for n in feats:
        v = values[n.id]
        # the fraction is the share of prompt graphs holding the feature at that role
        holding = sum(any(m.kind is NodeKind.FEATURE and m.layer == n.layer and m.feature == n.feature
                          and roles[k][m.position] == n.role for m in p.graph.nodes) for k, p in enumerate(parts))
        assert v["fraction"] == pytest.approx(holding / 3)
        assert n.in_circuit == (v["fraction"] >= 0.25)
        assert n.score == pytest.approx(v["influence"])
    assert "completeness" in stored.metrics and "faithfulness" not in stored.metrics


def test_each_prompt_graph_holds_features_with_activation_influence_and_labels(discovered):
    cat, _, prompt, _ = discovered
    stored = cat.get(prompt.id)
    assert stored.task == "prompt" and stored.name.startswith("When Mary")
    g = stored.graph
    kinds = {n.kind for n in g.nodes}
    assert kinds == {NodeKind.INPUT, NodeKind.FEATURE, NodeKind.ERROR, NodeKind.LOGITS}
    (logit,) = [n for n in g.nodes if n.kind is NodeKind.LOGITS]
    values = stored.provenance.method_params["attribution"]["nodes"]
    for n in g.nodes:
        if n.kind is NodeKind.FEATURE:
            assert values[n.id]["activation"] > 0 and n.score == values[n.id]["influence"]
    assert any(e.dst == logit.id for e in g.edges)
    labels = g.labels()
    assert labels[logit.id].startswith("logit ")
    assert all(labels[n.id].startswith("Input ") for n in g.nodes if n.kind is NodeKind.INPUT)
    # the target is the model's own top next token
    assert stored.provenance.metric == "top_logit"


def test_an_attribution_graph_exports_to_circuit_tracer_json_and_imports_back_unchanged(discovered, tmp_path):
    cat, _, prompt, _ = discovered
    stored = cat.get(prompt.id)
    buf = io.StringIO()
    write_circuit(stored, "circuit-tracer", buf)
    doc = json.loads(buf.getvalue())
    assert doc["metadata"]["scan"] == "catalog-default"
    by_type = {n["feature_type"] for n in doc["nodes"]}
    assert by_type == {"embedding", "cross layer transcoder", "mlp reconstruction error", "logit"}
    path = tmp_path / "graph.json"
    path.write_text(buf.getvalue())
    (back,) = read_circuits(path)
    assert back.graph.nodes == stored.graph.nodes
    assert back.graph.edges == stored.graph.edges
    assert back.graph.annotations == stored.graph.annotations
    mine = stored.provenance.method_params["attribution"]["nodes"]
    theirs = back.provenance.method_params["attribution"]["nodes"]
    for nid, v in mine.items():
        assert {k: theirs[nid].get(k) for k in v} == v
    # the labels travel as circuit-tracer's clerp field
    clerps = {n["clerp"] for n in doc["nodes"]}
    assert any(c.startswith("logit ") for c in clerps)


def test_a_feature_label_from_the_transcoder_set_reaches_the_stored_graph(tc_folder):
    from catalog.models import load_model
    from catalog.transcoders.attribution import attribute
    from catalog.transcoders.circuits import prompt_graph
    from catalog.transcoders.pruning import prune

    tset = TranscoderSet.load(tc_folder)
    loaded = load_model(None)
    tokens = torch.tensor([0, 5, 9, 17, 33, 40])
    att = attribute(loaded.model, tset, tokens)
    kept = prune(att, 1.0, 1.0)
    pg = prompt_graph(att, kept, loaded.shape, tset, str, "top")
    labelled = {nid for nid, text in pg.graph.labels().items() if text == "feature zero-one"}
    expected = {n.id for n in pg.graph.nodes if n.kind is NodeKind.FEATURE and n.layer == 0 and n.feature == 1}
    assert labelled == expected


def test_an_attribution_graph_draws_layered_by_layer_and_position(discovered, tmp_path):
    pytest.importorskip("matplotlib")
    from catalog.draw import draw
    from catalog.layered import layout

    cat, _, prompt, _ = discovered
    stored = cat.get(prompt.id)
    placed = layout(stored.graph)
    at = {n.id: n for n in placed.nodes}
    for n in stored.graph.nodes:
        c = parse_node(n.id)
        if c.kind in (NodeKind.FEATURE, NodeKind.ERROR):
            assert at[n.id].row == c.layer + 1
        elif c.kind is NodeKind.INPUT:
            assert at[n.id].row == 0
        else:
            assert at[n.id].row == stored.graph.shape.n_layers + 1
        assert at[n.id].position == str(c.position) or at[n.id].position == c.position
    # columns follow positions: a later position never sits left of an earlier one in a row
    by_row: dict[int, list] = {}
    for n in placed.nodes:
        by_row.setdefault(n.row, []).append(n)
    for row in by_row.values():
        ordered = sorted(row, key=lambda n: n.x)
        positions = [parse_node(n.id).position for n in ordered]
        assert positions == sorted(positions)
    out = draw(stored, tmp_path / "graph.svg")
    root = ET.parse(out).getroot()
    texts = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert any("layer 3" in t for t in texts) and any("logits" in t for t in texts)


def test_a_task_prompt_graph_exports_with_its_feature_labels_and_imports_back_unchanged(discovered, tmp_path):
    """Item 5's round trip on a graph discovery stored for a task (prompt 1 of the IOI run): nodes,
    links with their weights, activation and influence values, and the labels (features' from the
    transcoder set, as circuit-tracer's clerp)."""
    from catalog.queries import prompt_graph_id

    cat, task, _, _ = discovered
    stored = cat.get(prompt_graph_id(cat, task.id, 1))
    assert stored.name == "ioi #1"
    path = tmp_path / "ioi-1.json"
    write_circuit(stored, "circuit-tracer", path)
    doc = json.loads(path.read_text())
    feats = [n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert feats and all(n["clerp"].startswith(("promotes word", "feature zero-one")) for n in feats)
    labels = stored.graph.labels()
    for n in feats:
        nid = f"f{n['layer']}.{n['node_id'].split('_')[1]}@{n['ctx_idx']}[tc]"
        assert n["clerp"] == labels[nid]
    (back,) = read_circuits(path)
    assert back.graph.nodes == stored.graph.nodes
    assert back.graph.edges == stored.graph.edges  # ids, weights and circuit flags
    assert back.graph.labels() == labels
    assert back.graph.annotations == stored.graph.annotations
    mine = stored.provenance.method_params["attribution"]["nodes"]
    theirs = back.provenance.method_params["attribution"]["nodes"]
    assert mine.keys() == theirs.keys()
    for nid, v in mine.items():
        assert {k: theirs[nid].get(k) for k in v} == v


def test_show_and_export_reach_each_prompt_graph_of_a_task_and_refuse_a_bad_index(discovered, tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    cat, task, _, _ = discovered
    run = CliRunner()
    out = run.invoke(app, ["--db", cat.url, "show", str(task.id)])
    assert out.exit_code == 0 and f"`catalog show {task.id} --prompt I`" in out.stdout
    out = run.invoke(app, ["--db", cat.url, "show", str(task.id), "--prompt", "2"])
    assert out.exit_code == 0 and "ioi #2" in out.stdout
    out = run.invoke(app, ["--db", cat.url, "show", str(task.id), "--prompt", "3"])
    assert out.exit_code == 1 and out.stderr.strip().count("\n") == 0 and "prompts 0 to 2" in out.stderr
    out = run.invoke(app, ["--db", cat.url, "export", str(task.id), "--format", "circuit-tracer"])
    assert out.exit_code == 1 and "--prompt I" in out.stderr and "Traceback" not in out.output
    target = tmp_path / "p0.json"
    out = run.invoke(app, ["--db", cat.url, "export", str(task.id), "--prompt", "0", "--format", "circuit-tracer",
                           "-o", str(target)])
    assert out.exit_code == 0 and json.loads(target.read_text())["metadata"]["scan"] == "catalog-default"


HEADS = ["a1.h0", "a3.h2"]


@pytest.fixture(scope="module")
def head_circuit(discovered):
    """A head circuit of IOI beside the discovered feature circuit (its heads chosen by hand)."""
    from catalog.graph import CircuitGraph
    from catalog.provenance import Circuit, Provenance, Selection, Source

    cat, task, _, _ = discovered
    g = CircuitGraph.build(cat.get(task.id).graph.shape, ["input", *HEADS, "logits"],
                           [e for h in HEADS for e in (("input", h, "v", 1.0), (h, "logits", None, 1.0))])
    return cat.add(Circuit(g, "ioi", Provenance(source=Source.IMPORT, selection=Selection(rule="given"))))


def test_relate_names_the_heads_writing_and_reading_the_top_features(discovered, head_circuit, tc_folder):
    from catalog.analysis.feature_heads import relate

    cat, task, _, _ = discovered
    heads, hid = HEADS, head_circuit
    r = relate(cat, "ioi", "ioi", top=4)  # task names pick the feature and the head circuit
    assert (r.feature_circuit.id, r.head_circuit.id, r.prompts) == (task.id, hid, 3)
    feats = sorted((n for n in cat.get(task.id).graph.circuit_nodes if n.kind is NodeKind.FEATURE),
                   key=lambda n: (-n.score, n.id))[:4]
    assert [f.feature for f in r.features] == [n.id for n in feats]
    for f in r.features:
        layer = parse_node(f.feature).layer
        assert 1 <= f.prompts <= 3
        assert all(parse_node(w.head).layer <= layer for w in f.writers)  # heads at or below it write it
        assert all(parse_node(w.head).layer > layer for w in f.readers)  # heads above it read it
        assert all(w.in_head_circuit == (w.head in heads) for w in (*f.writers, *f.readers))
    assert r.head_share == 2 / 16 and 0.0 <= r.write_share <= 1.0
    assert {t.head for t in r.heads} == {f"a{a}.h{b}" for a in range(4) for b in range(4)}
    assert r.transcoders == str(tc_folder)
    # --feature: one feature at each of its roles, instead of the top N
    from catalog.naming import component_of

    name = component_of(feats[0].id)
    at_roles = {n.id for n in cat.get(task.id).graph.circuit_nodes if component_of(n.id) == name}
    named = relate(cat, task.id, hid, features=[name])
    assert {f.feature for f in named.features} == at_roles


def test_relate_refuses_circuits_in_the_wrong_places_with_one_line(discovered, head_circuit):
    from typer.testing import CliRunner

    from cli.app import app

    cat, task, prompt, _ = discovered
    run = CliRunner()
    head = [head_circuit]
    cases = [
        ([str(head[0]), str(task.id)], "holds no features"),  # swapped: a head circuit first
        ([str(task.id), str(task.id)], "holds no attention heads"),  # a feature circuit second
        ([str(prompt.id), str(head[0])], "not found by"),  # a --prompt graph has no task prompts
        ([str(task.id), str(head[0]), "--top", "0"], "--top"),
        ([str(task.id), str(head[0]), "--transcoders", "/nonexistent/tc"], "no such folder"),
        ([str(task.id), str(head[0]), "--feature", "f3.9999[tc]"], "holds no feature f3.9999[tc]"),
        ([str(task.id), str(head[0]), "--feature", "a1.h0"], "is not a feature id"),
    ]
    for args, message in cases:
        out = run.invoke(app, ["--db", cat.url, "features", "relate", *args])
        assert out.exit_code == 1, (args, out.output)
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)

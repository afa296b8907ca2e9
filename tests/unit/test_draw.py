"""Layered drawings: the pure layout (rows, columns, positions) and the rendered files.

Checked on a discovered circuit (EAP-IG's on GPT-2 small, from MIB, and a hand-built one), a
published circuit and an attribution graph (circuit-tracer), and on a comparison of two.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from catalog.errors import InvalidInputError
from catalog.graph import CircuitGraph, ModelShape
from catalog.layered import compare_layout, layout

pytest.importorskip("matplotlib")

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "peer-formats"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared peer-format fixtures (../shared) are absent")
SVG = "{http://www.w3.org/2000/svg}"

TOY = ModelShape("toy-3l", n_layers=3, n_heads=4)


def toy_graph() -> CircuitGraph:
    return CircuitGraph.build(
        TOY, ["input", "a0.h3", "a0.h1", "m0", "a2.h1", "m2", "logits"],
        [("input", "a0.h1", "v", 0.4), ("input", "a0.h3", "k", -0.2), ("a0.h1", "m0", None, 1.5),
         ("a0.h3", "a2.h1", "q", 0.7), ("m0", "a2.h1", "v", -2.0), ("a2.h1", "logits", None, 3.0),
         ("m0", "m2", None, 0.1), ("m2", "logits", None, -0.5)],
        node_scores={"a2.h1": 4.0})


def svg_facts(path: Path) -> tuple[set[str], int, int]:
    """The texts, the number of node markers and of edge artists in a drawn SVG."""
    root = ET.parse(path).getroot()
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    markers = sum(c.tag in (f"{SVG}use", f"{SVG}path") for c in groups["nodes"]) if "nodes" in groups else 0
    edges = sum(1 for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("edges"))
    return texts, markers, edges


def test_layout_puts_input_at_the_bottom_layers_in_rows_and_logits_on_top():
    placed = layout(toy_graph())
    at = {n.id: n for n in placed.nodes}
    assert at["input"].row == 0 and at["logits"].row == TOY.n_layers + 1
    assert (at["a0.h1"].row, at["m0"].row, at["a2.h1"].row, at["m2"].row) == (1, 1, 3, 3)
    # heads keep their index as column, so a head lines up across layers; MLPs beside them
    assert at["a0.h1"].x == at["a2.h1"].x == 1.0 and at["a0.h3"].x == 3.0
    assert at["m0"].x == at["m2"].x == TOY.n_heads > at["a0.h3"].x
    assert placed.rows == ("input", "layer 0", "layer 1", "layer 2", "logits")
    assert at["a2.h1"].weight == 4.0 and at["a0.h1"].weight == 1.5  # own score, else best edge
    assert {(e.src, e.dst, e.qkv) for e in placed.edges} >= {("a0.h3", "a2.h1", "q"), ("input", "a0.h3", "k")}


def test_position_resolved_nodes_get_one_block_per_position_in_token_order():
    shape = ModelShape("toy", n_layers=2, n_heads=2)
    g = CircuitGraph.build(shape, ["input@0", "input@2", "a0.h1@0", "a0.h0@2", "a0.h1@2", "m1@2", "logits@2"],
                           [("input@0", "a0.h1@0", "v", 1.0), ("a0.h1@0", "m1@2", None, 1.0),
                            ("input@0", "a0.h0@2", "k", 1.0),
                            ("input@2", "a0.h1@2", "q", 1.0), ("a0.h0@2", "m1@2", None, 1.0),
                            ("a0.h1@2", "m1@2", None, 1.0), ("m1@2", "logits@2", None, 1.0)])
    placed = layout(g)
    at = {n.id: n for n in placed.nodes}
    assert placed.positions == ("0", "2")
    assert max(at[i].x for i in ("input@0", "a0.h1@0")) < min(at[i].x for i in ("input@2", "a0.h0@2", "m1@2"))
    assert at["a0.h0@2"].x < at["a0.h1@2"].x  # heads in order inside a block
    assert at["a0.h0@2"].row == at["a0.h1@2"].row == 1 and at["m1@2"].row == 2 and at["logits@2"].row == 3
    assert at["a0.h1@2"].position == "2"


def test_compare_layout_marks_shared_and_exclusive_components():
    a = toy_graph()
    b = CircuitGraph.build(TOY, ["input", "a0.h1", "a1.h2", "logits"],
                           [("input", "a0.h1", "v", 1.0), ("a0.h1", "a1.h2", "k", 1.0), ("a1.h2", "logits", None, 1.0)])
    placed = compare_layout(a, b)
    sides = {n.id: n.side for n in placed.nodes}
    assert sides["a0.h1"] == sides["input"] == "shared"
    assert sides["m0"] == "only_a" and sides["a1.h2"] == "only_b"
    assert {(e.src, e.dst): e.side for e in placed.edges}[("input", "a0.h1")] == "shared"
    with pytest.raises(InvalidInputError, match="same model"):
        compare_layout(a, CircuitGraph.build(ModelShape("other", 2, 2), ["input", "logits"], []))


def test_drawing_a_discovered_circuit_writes_every_node_and_edge(tmp_path):
    from catalog.draw import draw

    out = draw(toy_graph(), tmp_path / "toy.svg")
    texts, markers, edge_groups = svg_facts(out)
    assert markers == 7 and edge_groups >= 3  # 7 nodes; edges drawn as line groups and arcs
    assert {"a0.h1", "a2.h1", "m0", "input", "logits", "layer 2", "into q", "into k", "into v",
            "positive", "negative", "attention", "mlp"} <= texts
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@needs_shared
def test_drawing_a_discovered_gpt2_circuit_from_eap_ig(tmp_path):
    from catalog.draw import draw
    from catalog.formats import read_circuits

    (c,) = read_circuits(SHARED / "eap-ig_mib-example_ioi_gpt2-small.json.gz", task="ioi")
    placed = layout(c.graph)
    assert len(placed.nodes) == 81 and len(placed.edges) == 756
    at = {n.id: n for n in placed.nodes}
    assert (at["a9.h9"].row, at["a9.h9"].x, at["m11"].row, at["m11"].x) == (10, 9.0, 12, 12.0)
    texts, markers, _ = svg_facts(draw(c, tmp_path / "ioi.svg"))
    assert markers == 81 and {"a9.h9", "a10.h7", "m0", "layer 11"} <= texts


def test_drawing_a_published_circuit_colours_its_roles(tmp_path):
    from catalog.draw import draw
    from catalog.published import published_circuits

    c = next(e.circuit for e in published_circuits() if e.name == "ioi-wang2022")
    placed = layout(c.graph)
    assert {n.id: n.row for n in placed.nodes}["a9.h9"] == 10
    texts, markers, _ = svg_facts(draw(c, tmp_path / "wang.svg"))
    assert markers == len(c.graph.circuit_nodes)
    assert {"name mover", "s-inhibition", "a9.h9"} <= {t.lower() for t in texts}


def _attribution_graph():
    from catalog.formats import read_circuits

    (c,) = read_circuits(SHARED / "circuit-tracer_dallas-austin_gemma-2-2b.json", task="factual-recall")
    return c


@needs_shared
def test_drawing_an_attribution_graph_by_layer_and_position(tmp_path):
    from catalog.draw import draw

    c = _attribution_graph()
    placed = layout(c.graph)
    assert placed.positions == tuple(str(i) for i in range(10))
    at = {n.id: n for n in placed.nodes}
    features = [n for n in placed.nodes if n.kind == "feature"]
    assert len(features) == 40 and all(n.row == n.layer + 1 for n in features)
    # every block holds only its own position's nodes, blocks left to right in token order
    spans = {p: [n.x for n in placed.nodes if n.position == p] for p in placed.positions}
    order = [p for p in placed.positions if spans[p]]
    assert all(max(spans[p]) < min(spans[q]) for p, q in zip(order, order[1:]))
    assert all(n.row == 0 for n in placed.nodes if n.kind == "input") and at
    texts, markers, _ = svg_facts(draw(c, tmp_path / "ct.svg"))
    assert markers == 60 and {"@0", "@9", "position", "feature"} <= texts


def test_named_positions_come_after_numbered_ones_in_first_seen_order():
    from catalog.layered import _order_positions

    assert _order_positions(["10", "END", "2", "S2", "END"]) == ["2", "10", "END", "S2"]


def test_compare_drawing_and_file_types(tmp_path):
    from catalog.draw import draw

    a = toy_graph()
    b = CircuitGraph.build(TOY, ["input", "a0.h1", "a1.h2", "logits"],
                           [("input", "a0.h1", "v", 1.0), ("a0.h1", "a1.h2", "k", 1.0), ("a1.h2", "logits", None, 1.0)])
    texts, markers, _ = svg_facts(draw(a, tmp_path / "cmp.svg", compare=b))
    assert {"in both", "only in A", "only in B"} <= texts and markers == 8
    assert draw(a, tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw(a, tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(InvalidInputError, match=re.escape(".svg, .png, .pdf")):
        draw(a, tmp_path / "a.jpg")
    with pytest.raises(InvalidInputError, match="does not exist"):
        draw(a, tmp_path / "missing" / "a.svg")

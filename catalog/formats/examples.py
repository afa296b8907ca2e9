"""Small, valid example documents of every format, built in code (no files needed).

They show what each importer accepts and give tests a known-good starting point to break:

    >>> from catalog.formats.examples import example_text
    >>> example_text("eap-ig")[:40]
    '{"cfg": {"n_layers": 6, "n_heads": 4, "p'
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any

from catalog.graph import Annotation, AnnotationKind, CircuitGraph
from catalog.provenance import Ablation, Circuit, Provenance, Selection, SelectionRule, Source
from catalog.shapes import KNOWN_SHAPES

TOY_TASK = "ioi"


def toy_circuit() -> Circuit:
    """An IOI-like circuit on the InterpBench shape (6 layers, 4 heads): every kind of
    annotation, metrics, tags and a full provenance, so round trips have something to lose."""
    shape = KNOWN_SHAPES["interpbench-ioi"]
    edges = [
        ("input", "a0.h1", "v", 0.25), ("input", "a0.h1", "q", -0.5), ("input", "m0", None, 0.125),
        ("a0.h1", "a3.h0", "k", 1.5), ("m0", "a3.h0", "v", 0.75), ("a3.h0", "m3", None, -2.0),
        ("a3.h0", "a5.h2", "q", 3.0), ("m3", "logits", None, 0.0625), ("a5.h2", "logits", None, 4.5),
        ("input", "logits", None, 1e-7),
    ]
    anns = [Annotation(AnnotationKind.ROLE, "duplicate token", node="a0.h1"),
            Annotation(AnnotationKind.ROLE, "s-inhibition", node="a3.h0"),
            Annotation(AnnotationKind.ROLE, "name mover", node="a5.h2"),
            Annotation(AnnotationKind.LABEL, "writes the IO name", node="a5.h2"),
            Annotation(AnnotationKind.GROUP, "movers", members=("a3.h0", "a5.h2")),
            Annotation(AnnotationKind.CITATION, "Wang et al. 2022, arXiv:2211.00593"),
            Annotation(AnnotationKind.NOTE, "toy example")]
    graph = CircuitGraph.build(shape, ["input", "a0.h1", "m0", "a3.h0", "m3", "a5.h2", "logits", "a1.h3"],
                               edges, node_scores={"a5.h2": 0.9, "a0.h1": -0.1}, annotations=anns)
    # Keep the weakest edge and the isolated head out of the circuit, so flags must survive.
    graph = graph.with_selection(e.key for e in graph.edges if e.src != "input" or e.dst != "logits")
    prov = Provenance(
        source=Source.DISCOVERY, method="eap-ig", method_params={"steps": 5, "batch_size": 8},
        dataset_hash="sha256:0f1e", dataset_size=64, seed=1, metric="logit_diff",
        ablation=Ablation.COUNTERFACTUAL, selection=Selection(rule=SelectionRule.TOP_K, value=9),
        library_versions={"python": "3.11.7"}, created_by="example",
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        citation="Wang et al. 2022", notes="made by catalog.formats.examples")
    return Circuit(graph=graph, task=TOY_TASK, provenance=prov, name="toy ioi", tags=("toy", "example"),
                   metrics={"faithfulness": 0.875, "faithfulness_curve": [[0.1, 0.5], [1.0, 1.0]]})


def eap_ig_document(legacy: bool = False) -> dict[str, Any]:
    """The toy circuit as EAP-IG JSON; `legacy` uses bare booleans for nodes (mid-2024 MIB)."""
    from catalog.formats.registry import write_circuit

    buf = io.StringIO()
    write_circuit(toy_circuit(), "eap-ig", buf)
    doc: dict[str, Any] = json.loads(buf.getvalue())
    if legacy:
        doc["nodes"] = {k: v["in_graph"] for k, v in doc["nodes"].items()}
    return doc


def circuit_tracer_document() -> dict[str, Any]:
    """A tiny Gemma-2-2B attribution graph in circuit-tracer's schema (Cantor feature codes)."""
    def cantor(layer: int, idx: int) -> int:
        return (layer + idx) * (layer + idx + 1) // 2 + idx

    def node(nid: str, ftype: str, layer: Any, ctx: int, feature: int | None, clerp: str = "",
             **extra: Any) -> dict[str, Any]:
        return {"node_id": nid, "feature": feature, "layer": layer, "ctx_idx": ctx,
                "feature_type": ftype, "jsNodeId": nid.replace("_", "-", 1), "clerp": clerp, **extra}

    return {
        "metadata": {"slug": "toy-capital", "scan": "mntss/gemma-scope-transcoders",
                     "transcoder_list": [], "prompt_tokens": ["<bos>", "Paris", " is"],
                     "prompt": "<bos>Paris is", "node_threshold": 0.8, "schema_version": 1},
        "qParams": {"pinnedIds": [], "supernodes": [["capital", "3_1200_1", "7_42_2"]],
                    "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": [
            node("E_9876_1", "embedding", "E", 1, 1, influence=0.31, activation=None),
            node("E_2_0", "embedding", "E", 0, 0),
            node("3_1200_1", "cross layer transcoder", "3", 1, cantor(3, 1200), "capital cities",
                 influence=0.42, activation=7.5),
            node("7_42_2", "cross layer transcoder", 7, 2, cantor(7, 42), "say a capital"),
            node("0_5_2", "mlp reconstruction error", "5", 2, -1),
            node("27_2135_2", "logit", "27", 2, 2135, 'Output " France" (p=0.610)', token_prob=0.61,
                 is_target_logit=True, influence=None, activation=None),
        ],
        "links": [
            {"source": "E_9876_1", "target": "3_1200_1", "weight": 4.2},
            {"source": "E_2_0", "target": "3_1200_1", "weight": -0.5},
            {"source": "3_1200_1", "target": "7_42_2", "weight": 2.0},
            {"source": "3_1200_1", "target": "0_5_2", "weight": 0.25},
            {"source": "7_42_2", "target": "27_2135_2", "weight": 1.7},
            {"source": "0_5_2", "target": "27_2135_2", "weight": -0.3},
        ],
    }


def example_text(fmt: str) -> str:
    """A valid document of format `fmt` (catalog-json, graphml, eap-ig, eap-ig-legacy,
    circuit-tracer) as text."""
    from catalog.formats.registry import write_circuit

    if fmt == "eap-ig":
        return json.dumps(eap_ig_document())
    if fmt == "eap-ig-legacy":
        return json.dumps(eap_ig_document(legacy=True))
    if fmt == "circuit-tracer":
        return json.dumps(circuit_tracer_document())
    buf = io.StringIO()
    write_circuit(toy_circuit(), fmt, buf)
    return buf.getvalue()

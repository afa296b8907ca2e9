"""`catalog compare`, `reuse --features` and `features relate` on feature circuits, from the
command line: the feature level beside the head level, JSON, and one-line refusals."""

from __future__ import annotations

import json

from catalog.graph import Annotation, AnnotationKind, CircuitGraph, ModelShape
from catalog.provenance import Circuit, Provenance, Selection, Source

SHAPE = ModelShape("toy-3l", n_layers=3, n_heads=4, d_model=16)


def features(task: str, scores: dict[str, float], label: dict[str, str] | None = None) -> Circuit:
    ids = ["input@END", *scores, "logits@END"]
    edges = [e for i, s in scores.items() for e in (("input@END", i, None, 1.0), (i, "logits@END", None, s))]
    anns = [Annotation(AnnotationKind.LABEL, text, node=i) for i, text in (label or {}).items()]
    g = CircuitGraph.build(SHAPE, ids, edges, node_scores=scores, annotations=anns)
    prov = Provenance(source=Source.DISCOVERY, method="attribution-graph", selection=Selection(rule="given"))
    return Circuit(g, task, prov)


def heads(task: str, names: list[str]) -> Circuit:
    g = CircuitGraph.build(SHAPE, ["input", *names, "logits"],
                           [e for h in names for e in (("input", h, "v", 1.0), (h, "logits", None, 1.0))])
    return Circuit(g, task, Provenance(source=Source.IMPORT, selection=Selection(rule="given")))


def test_compare_prints_the_feature_level_with_labels_and_the_head_level(cli, catalog_with):
    a, b, _, _ = catalog_with(
        features("ioi", {"f0.1@END[tc]": 0.4, "f1.2@S2[tc]": 0.6}, {"f0.1@END[tc]": "+Mary/John"}),
        features("colored-objects", {"f0.1@END[tc]": 0.2, "f2.3@END[tc]": 0.8}),
        heads("ioi", ["a0.h1", "a2.h3"]), heads("colored-objects", ["a2.h3"]))
    out = cli("compare", a, b)
    assert out.exit_code == 0, out.output
    assert "feature level (per role): 1 shared of 2 and 2 features" in out.stdout
    assert "influence-weighted Jaccard (sum min / sum max): 0.111" in out.stdout  # 0.2 / (0.4+0.6+0.8)
    assert "+Mary/John" in out.stdout
    assert "head level (head circuits #3 ioi, #4 colored-objects" in out.stdout and "a2.h3" in out.stdout
    data = json.loads(cli("compare", a, b, "--json").stdout)
    assert abs(data["feature_level"]["weighted"] - 0.2 / 1.8) < 1e-12 and data["head_level"]["shared"] == ["a2.h3"]


def test_reuse_features_prints_both_matrices_and_refuses_mixed_options(cli, catalog_with):
    catalog_with(features("ioi", {"f0.1@END[tc]": 1.0}), features("colored-objects", {"f0.1@END[tc]": 0.5}),
                 heads("ioi", ["a0.h1"]))
    out = cli("reuse", "--features")
    assert out.exit_code == 0, out.output
    assert "1.000 (1), w 0.500" in out.stdout
    assert "head circuits of the same tasks" in out.stdout and "colored-objects (none)" in out.stdout
    data = json.loads(cli("reuse", "--features", "--json").stdout)
    assert data["weighted"][0][1] == 0.5 and data["head_circuits"] == {"ioi": 3}
    for extra in (["--knockout", "ioi"], ["--stable", "0.5"]):
        bad = cli("reuse", "--features", *extra)
        assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.output


def test_relate_with_a_head_circuit_first_is_one_clear_line(cli, catalog_with):
    f, h = catalog_with(features("ioi", {"f0.1@END[tc]": 1.0}), heads("ioi", ["a0.h1"]))
    out = cli("features", "relate", h, f)
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "holds no features" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = cli("features", "relate", f, f)
    assert out.exit_code == 1 and "holds no attention heads" in out.stderr

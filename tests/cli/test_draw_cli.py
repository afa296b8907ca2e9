"""`catalog draw`: a drawing of a stored circuit, or of two compared, written atomically."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")


def test_draw_writes_the_named_file_and_compares(cli, tmp_path):
    assert cli("published", "load").exit_code == 0
    out = tmp_path / "wang.png"
    result = cli("draw", "ioi-wang2022", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG" and str(out) in result.stdout
    svg = tmp_path / "cmp.svg"
    both = cli("draw", "ioi", "--model", "gpt2-medium", "--compare", "colored-objects", "-o", svg)
    assert both.exit_code == 0, both.stderr
    assert "only in A" in svg.read_text() and "against circuit" in both.stdout


def test_draw_refuses_an_unknown_file_type_in_one_line(cli, tmp_path):
    cli("published", "load", "ioi-wang2022")
    folder = tmp_path / "drawings"
    folder.mkdir()
    bad = cli("draw", "ioi-wang2022", "-o", folder / "x.jpg")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and ".svg" in bad.stderr
    assert not list(folder.iterdir())


def test_an_attribution_graph_imports_without_task_and_exports_for_its_viewers(cli, tmp_path):
    import json

    from catalog.formats.examples import circuit_tracer_document

    doc = circuit_tracer_document()
    doc["qParams"]["pinnedIds"] = ["3_1200_1"]
    (tmp_path / "graph.json").write_text(json.dumps(doc))
    imported = cli("import", tmp_path / "graph.json", "--json")
    assert imported.exit_code == 0, imported.stderr
    (cid,) = json.loads(imported.stdout)["ids"]
    out = tmp_path / "again.json"
    result = cli("export", cid, "--format", "circuit-tracer", "-o", out)
    assert result.exit_code == 0, result.stderr
    again = json.loads(out.read_text())
    assert again["qParams"]["pinnedIds"] == ["3_1200_1"] and again["metadata"]["slug"] == "toy-capital"
    assert {n["node_id"] for n in again["nodes"]} == {n["node_id"] for n in doc["nodes"]}
    assert cli("draw", cid, "-o", tmp_path / "graph.svg").exit_code == 0

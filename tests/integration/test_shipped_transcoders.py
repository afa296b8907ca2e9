"""The transcoder set shipped for catalog-default: it meets its FVU target on fresh held-out data,
every feature has a label, and those labels reach `catalog show` and the exports."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from catalog.naming import parse_node
from catalog.transcoders.evaluate import FVU_TARGET
from catalog.transcoders.model import TranscoderSet
from catalog.transcoders.shipped import shipped_folder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shipped() -> TranscoderSet:
    folder = shipped_folder("catalog-default")
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: the package ships a transcoder set for catalog-default")
    return TranscoderSet.load(folder)


@pytest.fixture(scope="module")
def loaded():
    from catalog.models import load_model

    return load_model(None, device="cpu")


@pytest.mark.slow
def test_shipped_set_meets_the_fvu_target_on_fresh_data(shipped, loaded):
    from catalog.transcoders.data import TokenStream
    from catalog.transcoders.train import measure

    # a seed neither training (0), its held-out figures nor `evaluate` used
    figures = measure(loaded.model, shipped, TokenStream(loaded.tokenizer, 4242), batches=4)
    assert len(figures) == loaded.model.cfg.n_layers
    for f in figures:
        assert f["fvu"] <= FVU_TARGET, f
        assert f["l0"] <= shipped.layers[0].k
    assert shipped.config["data"]["sha256"] and shipped.config["training"]["command"].startswith(
        "catalog transcoders train --model catalog-default")


def test_every_shipped_feature_has_a_label(shipped):
    assert len(shipped.labels) == len(shipped.layers) * shipped.n_features
    for layer in range(len(shipped.layers)):
        for f in (0, shipped.n_features - 1):
            record = shipped.labels[f"{layer}.{f}"]
            assert record["label"] and len(record["promotes"]) == len(record["suppresses"]) == 5


@pytest.mark.slow
def test_shipped_labels_reach_show_and_the_exports(shipped, tmp_path):
    from cli.app import app

    db = str(tmp_path / "c.db")
    runner = CliRunner()
    found = runner.invoke(app, ["--db", db, "discover", "--method", "attribution-graph", "--prompt",
                                "When Mary and John went to the store, John gave a drink to", "--json"])
    assert found.exit_code == 0, found.output
    circuit_id = str(json.loads(found.stdout)[0]["id"])
    shown = json.loads(runner.invoke(app, ["--db", db, "show", circuit_id, "--json"]).stdout)
    features = [n for n in shown["nodes"] if n["kind"] == "feature"]
    assert features
    expected = {n["id"]: shipped.label(parse_node(n["id"]).layer, parse_node(n["id"]).feature) for n in features}
    assert {n["id"]: n["label"] for n in features} == expected and all(expected.values())
    text = runner.invoke(app, ["--db", db, "show", circuit_id]).stdout
    assert expected[features[0]["id"]] in text
    out = tmp_path / "graph.json"
    assert runner.invoke(app, ["--db", db, "export", circuit_id, "--format", "circuit-tracer", "-o",
                               str(out)]).exit_code == 0
    clerps = {n["node_id"]: n.get("clerp") for n in json.loads(out.read_text())["nodes"]}
    assert {text for text in clerps.values() if text} >= {n["label"] for n in features}

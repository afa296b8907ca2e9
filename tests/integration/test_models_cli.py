"""`catalog model info` and `catalog model accuracy` on the shipped default model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from catalog.models import DEFAULT_MODEL_DIR, checkpoint
from cli.app import app

needs_default = pytest.mark.skipif(not checkpoint.is_checkpoint(DEFAULT_MODEL_DIR),
                                reason="the embedded default model is not built in this checkout")


@needs_default
def test_model_info_reports_shape_parameters_and_recipe() -> None:
    result = CliRunner().invoke(app, ["model", "info", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    cfg = data["architecture"]
    assert (cfg["n_layers"], cfg["n_heads"], cfg["d_model"]) == (4, 4, 128)
    per_layer = 4 * 4 * 128 * 32 + 2 * 128 * cfg["d_mlp"]
    assert data["parameters"] > cfg["n_layers"] * per_layer
    assert "catalog.models.train" in data["training"]["command"]
    text = CliRunner().invoke(app, ["model", "info"]).output
    assert "embedded default model" in text and f"{data['parameters']:,} parameters" in text


@needs_default
@pytest.mark.slow
def test_model_accuracy_json() -> None:
    result = CliRunner().invoke(app, ["model", "accuracy", "--n", "16", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # loading messages go to stderr, never into the JSON
    assert data["is_default"] and data["model"] == "catalog-default"
    assert set(data["results"]) >= {"ioi", "colored-objects", "greater-than", "induction"}
    assert all(r["n"] == 16 and 0.0 <= r["accuracy"] <= 1.0 for r in data["results"].values())


def test_model_accuracy_unknown_model_is_one_line_error() -> None:
    result = CliRunner().invoke(app, ["model", "accuracy", "--model", "gpt-7", "--device", "cpu"])
    assert result.exit_code == 1
    assert "Unknown model 'gpt-7'" in result.output and "Traceback" not in result.output

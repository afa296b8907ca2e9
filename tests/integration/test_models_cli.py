"""`catalog model info` and `catalog model accuracy` on the shipped default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.models import DEEP_MODEL_DIR, DEFAULT_MODEL_DIR, checkpoint
from cli.app import app

ROOT = Path(__file__).resolve().parents[2]

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


def test_model_info_names_an_embedded_model_or_says_which_exist() -> None:
    result = CliRunner().invoke(app, ["model", "info", "--model", "gpt2-small"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not an embedded model" in result.output and "catalog-deep" in result.output


@pytest.mark.skipif(not checkpoint.is_checkpoint(DEEP_MODEL_DIR),
                    reason="the deeper embedded model is not built in this checkout")
def test_model_info_of_the_deep_model() -> None:
    data = json.loads(CliRunner().invoke(app, ["model", "info", "--model", "catalog-deep", "--json"]).output)
    assert data["name"] == "catalog-deep"
    assert (data["architecture"]["n_layers"], data["architecture"]["n_heads"]) == (6, 8)
    assert "--recipe deep" in data["training"]["command"]
    assert data["training"]["recipe"]["grow_from"] == "catalog-default"
    text = CliRunner().invoke(app, ["model", "info", "--model", "catalog-deep"]).output
    assert "grown from catalog-default" in text


# Runs `catalog ARGS...` in a fresh interpreter (HF_HOME is read when huggingface_hub is imported)
# and times the command alone: torch and TransformerLens are imported first, since their import
# time depends on the machine's load and is not what the offline check controls.
_TIMED_CLI = """
import json, sys, time
import transformer_lens
from cli.app import main
sys.argv = ["catalog", *sys.argv[1:]]
start = time.monotonic()
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "seconds": time.monotonic() - start}))
"""


@pytest.mark.parametrize("offline_env", [{"HF_ENDPOINT": "http://127.0.0.1:9"}, {"HF_HUB_OFFLINE": "1"}],
                         ids=["hub-unreachable", "hf-hub-offline"])
def test_uncached_hub_model_fails_fast_offline(tmp_path: Path, offline_env: dict[str, str]) -> None:
    """An empty Hugging Face cache and no hub (a refused connection, or HF_HUB_OFFLINE=1): one line
    naming the download command, HF_HUB_OFFLINE and --model PATH, and no retrying for 20 s."""
    pytest.importorskip("transformer_lens")
    env = {k: v for k, v in os.environ.items()
           if k not in {"HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"}}
    env.update(offline_env, HF_HOME=str(tmp_path / "empty-hf-home"))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["--db", db, "discover", "--task", "ioi", "--model", "gpt2-small", "--device", "cpu", "--n", "4"]
    proc = subprocess.run([sys.executable, "-c", _TIMED_CLI, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 1, proc.stderr[-2000:]
    assert out["seconds"] < 15, out  # it used to retry the hub for about 23 s before failing
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    message = errors[0]
    assert "gpt2-small (gpt2) is not in the Hugging Face cache" in message
    assert ("appears offline" if "HF_ENDPOINT" in offline_env else "HF_HUB_OFFLINE is set") in message
    assert "`hf download gpt2`" in message and "HF_HUB_OFFLINE=1" in message and "--model PATH" in message

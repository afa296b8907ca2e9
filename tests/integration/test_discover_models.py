"""End to end: `catalog discover` on a tiny GPT-2 loaded from a Hugging Face folder, and on the
embedded default model when it is present."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")


def run(db: str, *args: str):
    from cli.app import app

    return CliRunner().invoke(app, ["--db", db, *args])


@pytest.mark.slow
def test_discover_on_a_hugging_face_folder_end_to_end(tiny_hf_gpt2, tmp_path):
    db = str(tmp_path / "c.db")
    result = run(db, "discover", "--model", str(tiny_hf_gpt2), "--task", "ioi", "--task", "induction",
                 "--method", "eap", "--method", "activation-patching", "--n", "8", "--batch-size", "4",
                 "--top-k", "12", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(c["task"], c["method"]) for c in out] == [
        ("ioi", "eap"), ("ioi", "activation-patching"), ("induction", "eap"), ("induction", "activation-patching")]
    from catalog.discovery.layout import Layout

    for c in out:
        assert c["edges"] <= c["scored_edges"] == Layout(n_layers=2, n_heads=2).n_edges
        assert c["faithfulness"] is not None and c["cpr"] is not None
    runs = json.loads(run(db, "runs", "--json").stdout)
    assert [r["status"] for r in runs] == ["done"] * 4
    shown = run(db, "show", str(out[0]["id"]))
    assert shown.exit_code == 0 and "eap" in shown.stdout


def test_a_missing_model_folder_fails_before_any_run(tmp_path):
    db = str(tmp_path / "c.db")
    result = run(db, "discover", "--model", str(tmp_path / "nope"), "--task", "ioi")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert json.loads(run(db, "runs", "--json").stdout) == []


def _embedded_model_present() -> bool:
    from catalog.models import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR.is_dir() and any(DEFAULT_MODEL_DIR.iterdir())


needs_embedded = pytest.mark.skipif(not _embedded_model_present(),
                                    reason="the embedded default model is not in catalog/data/default_model")


@pytest.mark.slow
@needs_embedded
def test_main_job_on_the_embedded_model(tmp_path):
    db = str(tmp_path / "c.db")
    for task in ("ioi", "colored-objects"):
        result = run(db, "discover", "--task", task, "--n", "32")
        assert result.exit_code == 0, result.output
        assert "embedded default model" in result.stderr
    compared = run(db, "compare", "ioi", "colored-objects")
    assert compared.exit_code == 0, compared.output
    for c in json.loads(run(db, "list", "--json").stdout):
        assert c["metrics"]["faithfulness"] >= 0.8


@pytest.mark.slow
@needs_embedded
@pytest.mark.parametrize("task", ["ioi", "colored-objects"])
def test_eap_and_eap_ig_agree_with_edge_patching_on_the_embedded_model(task):
    import numpy as np

    from catalog.discovery import score
    from catalog.models import load_model
    from catalog.tasks import get_task

    loaded = load_model(None, device="cpu")
    ds = get_task(task).build(loaded, n=24, seed=1)
    exact = np.array([e.score for e in score(loaded, ds, "edge-patching", batch_size=24).edges])
    top = np.argsort(-np.abs(exact))[: len(exact) // 10]  # the edges that matter: top 10% by |effect|
    r = {}
    for method in ("eap", "eap-ig"):
        approx = np.array([e.score for e in score(loaded, ds, method, batch_size=24).edges])
        r[method] = np.corrcoef(approx, exact)[0, 1]
        r_top = np.corrcoef(approx[top], exact[top])[0, 1]
        print(f"\n{task} {method}: Pearson r vs edge-patching {r[method]:.3f} (all {len(exact)} edges), "
              f"{r_top:.3f} (top {len(top)}; target 0.9)")
    # Measured on two checkpoints of the default recipe: eap-ig 0.84-0.92 (ioi) and 0.985-0.995
    # (colored-objects); eap 0.51-0.78 (ioi) and 0.55-0.85 (colored-objects). These bounds catch
    # a broken method; the printed figures say how close to the 0.9 target each method comes.
    assert r["eap-ig"] >= 0.75 and r["eap"] >= 0.3


@needs_embedded
def test_relp_runs_end_to_end_from_the_command_line(tmp_path):
    db = str(tmp_path / "c.db")
    result = run(db, "discover", "--task", "ioi", "--method", "relp", "--n", "16", "--top-k", "40", "--json")
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["method"] == "relp" and summary["edges"] > 0
    assert 0.0 < summary["faithfulness"] <= 1.5

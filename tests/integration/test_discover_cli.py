"""`catalog discover` and `catalog runs` from the command line: errors, Ctrl-C, listings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("CATALOG_DB", raising=False)
    return str(tmp_path / "catalog.db")


def run(db: str, *args: str):
    from cli.app import app

    return CliRunner().invoke(app, ["--db", db, *args])


@pytest.mark.parametrize("args, message", [
    (["--task", "ioi", "--method", "eapp"], "Unknown method 'eapp'. Did you mean 'eap'?"),
    (["--task", "ioj"], "Unknown task 'ioj'. Did you mean 'ioi'?"),
    (["--task", "ioi", "--top-k", "3", "--faithfulness", "0.8"], "Give only one of"),
    (["--task", "ioi", "--threshold", "0.1", "--greedy"], "--greedy goes with --top-k K"),
    (["--task", "ioi", "--param", "steps"], "--param needs KEY=VALUE"),
    (["--task", "ioi", "--ablation", "resample"], "Unknown ablation 'resample'"),
    (["--task", "ioi", "--method", "eap", "--steps", "3"], "No chosen method takes steps"),
    (["--task", "ioi", "--n", "0"], "--n and --batch-size must be at least 1"),
    ([], "Name a task with --task"),
])
def test_bad_options_give_one_line_and_start_no_run(db, args, message):
    result = run(db, "discover", *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    listed = run(db, "runs", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_ctrl_c_exits_130(db, monkeypatch):
    import catalog.jobs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog.jobs, "discover_many", interrupted)
    result = run(db, "discover", "--task", "ioi")
    assert result.exit_code == 130 and "interrupted" in result.stderr


def test_runs_lists_done_and_failed_runs(db):
    pytest.importorskip("torch")
    from test_discovery_fixtures import copy_dataset, copy_head_model

    from catalog import jobs
    from catalog.provenance import Selection
    from catalog.store import Catalog

    cat = Catalog.open(db)
    good = jobs.discover(cat, "copy", model=copy_head_model(), method="activation-patching", dataset=copy_dataset(),
                         selection=Selection(rule="top-k", value=1), progress=False)
    bad = copy_dataset()
    bad.corrupt = bad.clean.clone()  # nothing to patch: faithfulness is undefined, the run fails
    with pytest.raises(Exception, match="faithfulness is undefined"):
        jobs.discover(cat, "copy", model=copy_head_model(), method="eap", dataset=bad, progress=False)
    cat.close()
    table = run(db, "runs")
    assert table.exit_code == 0
    assert "done" in table.stdout and "failed" in table.stdout  # the error may wrap inside its column
    rows = json.loads(run(db, "runs", "--json").stdout)
    assert [(r["status"], r["circuit_ids"]) for r in rows] == [("done", [good.id]), ("failed", [])]
    assert "faithfulness is undefined" in rows[1]["error"]
    assert json.loads(run(db, "runs", "--status", "failed", "--json").stdout)[0]["provenance"]["method"] == "eap"


def test_discover_help_and_runs_do_not_import_torch(db):
    probe = ("import sys; from cli.app import main; sys.argv = ['catalog', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    for args in (["discover", "--help"], ["--db", db, "runs"]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=REPO,
                             timeout=120, check=False)
        assert out.stderr.strip().endswith("NO-TORCH"), out.stderr


@pytest.mark.parametrize("args, message", [
    (["a0.h9", "logits"], "a0.h9 does not exist: the model has heads 0-3 per layer"),
    (["m7", "logits"], "m7 does not exist: the model has layers 0-3"),
    (["a0.h1@NOPE", "logits"], "Task ioi has no role NOPE. Its roles: BOS"),
    (["a2.h0", "a1.h1<q>"], "a1.h1 does not read a2.h0's output"),
    (["a0.h1", "m1<q>"], "Only a head has q, k and v inputs"),
    (["logits", "a1.h0"], "A sender is input, a head"),
    (["a0.h1", "logits", "--freeze", "strict"], "Unknown freezing convention 'strict'"),
    (["a0.h1", "logits", "--task", "ioj"], "Unknown task 'ioj'"),
])
def test_path_bad_input_gives_one_line(db, args, message):
    result = run(db, "path", *args, "--n", "2")
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_path_prints_the_effect_and_its_convention(db):
    result = run(db, "path", "a1.h0@END", "logits", "--n", "8", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["sender"] == "a1.h0@END" and doc["receivers"] == ["logits"] and doc["freeze"] == "wang"
    assert doc["n"] == 8 and len(doc["per_example"]) == 8 and doc["effect_mean"] > 0
    text = run(db, "path", "a0.h1", "a1.h0<k>", "--freeze", "direct", "--n", "8")
    assert text.exit_code == 0 and "metric drop" in text.stdout and "direct path only" in text.stdout

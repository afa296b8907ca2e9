"""`catalog transcoders train|list|show|evaluate`, and their bad input: one line, exit 1."""

from __future__ import annotations

import json

import pytest
import torch

from catalog.transcoders.model import Transcoder, TranscoderSet
from catalog.transcoders.shipped import shipped_folder


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    # TransformerLens may say it moved the model first; the error itself is one line
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and result.stderr.strip().endswith(lines[0]), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def small_set(folder, d_model: int = 128, n_layers: int = 4, model: str = "catalog-default") -> None:
    torch.manual_seed(0)
    TranscoderSet(model, [Transcoder(d_model, 8, 2) for _ in range(n_layers)]).save(folder)


@pytest.mark.slow
def test_train_writes_a_set_that_list_and_show_report(cli, tmp_path):
    out = tmp_path / "tiny"
    result = cli("transcoders", "train", "--steps", "3", "--features", "16", "--k", "4", "--threads", "1",
                 "--seed", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "step 3/3" in result.stderr
    assert {p.name for p in out.iterdir()} == {"transcoders.safetensors", "config.json", "labels.json"}
    shown = json.loads(cli("transcoders", "show", out, "--json").stdout)
    assert shown["n_features"] == 16 and shown["k"] == 4 and shown["labelled_features"] == 4 * 16
    assert shown["training"]["command"].endswith("--steps 3 --kind topk --seed 5")
    assert [f["layer"] for f in shown["layers"]] == [0, 1, 2, 3]
    listed = json.loads(cli("transcoders", "list", out, "--json").stdout)
    assert listed[-1]["folder"] == str(out) and listed[-1]["shipped"] is False
    text = cli("transcoders", "show", out).stdout
    assert "remake: catalog transcoders train" in text and "dead features" in text
    # a second run into the same folder is refused, and leaves the set as it was
    before = (out / "config.json").read_text()
    again = cli("transcoders", "train", "--steps", "1", "--features", "16", "--k", "4", "--out", out)
    one_line_error(again, "not empty")
    assert (out / "config.json").read_text() == before


def test_shipped_set_is_listed_and_shown(cli):
    if not shipped_folder("catalog-default").is_dir():
        pytest.fail("the catalog-default transcoder set is not in the package")
    listed = json.loads(cli("transcoders", "list", "--json").stdout)
    default = next(i for i in listed if i["model"] == "catalog-default")
    assert default["shipped"] is True and default["labelled_features"] == default["n_layers"] * default["n_features"]
    shown = cli("transcoders", "show")
    assert shown.exit_code == 0 and "catalog-default: 4 layers x" in shown.stdout
    assert json.loads(cli("transcoders", "show", "catalog-default", "--json").stdout) == default


def test_show_and_list_refuse_what_is_not_a_set(cli, tmp_path):
    one_line_error(cli("transcoders", "show", tmp_path / "missing"), "neither a folder nor a model")
    one_line_error(cli("transcoders", "list", tmp_path / "missing"), "no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(cli("transcoders", "show", tmp_path / "empty"), "not a transcoder folder")
    small_set(tmp_path / "broken")
    (tmp_path / "broken" / "config.json").write_text("{not json")
    one_line_error(cli("transcoders", "show", tmp_path / "broken"), "Cannot read")
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"format": "other"}))
    one_line_error(cli("transcoders", "list", tmp_path / "broken"), "is not a catalog-transcoders/1 config")


def test_evaluate_refuses_a_missing_folder_and_a_set_of_the_wrong_shape(cli, tmp_path):
    one_line_error(cli("transcoders", "evaluate", "--transcoders", tmp_path / "missing"), "no such folder")
    small_set(tmp_path / "narrow", d_model=64)
    one_line_error(cli("transcoders", "evaluate", "--transcoders", tmp_path / "narrow"),
                   "4 layers, d_model 64", "d_model 128")
    small_set(tmp_path / "shallow", n_layers=2)
    one_line_error(cli("transcoders", "evaluate", "--transcoders", tmp_path / "shallow"), "2 layers")
    small_set(tmp_path / "other", model="catalog-deep")
    one_line_error(cli("transcoders", "evaluate", "--transcoders", tmp_path / "other"), "catalog-deep")


def test_train_refuses_bad_options(cli, tmp_path):
    one_line_error(cli("transcoders", "train", "--kind", "relu", "--out", tmp_path / "x"), "topk or jumprelu")
    one_line_error(cli("transcoders", "train", "--features", "8", "--k", "9", "--out", tmp_path / "x"),
                   "--k must be between 1 and --features")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_evaluate_reports_fvu_and_both_accuracies(cli):
    result = cli("transcoders", "evaluate", "--n", "16", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f["layer"] for f in report["layers"]] == [0, 1, 2, 3]
    tasks = {t["task"]: t for t in report["tasks"]}
    assert {"ioi", "colored-objects", "greater-than", "induction"} <= set(tasks)
    for t in tasks.values():
        assert 0 <= t["replacement"] <= 1 and 0 <= t["original"] <= 1 and t["n"] == 16
    assert isinstance(report["meets_targets"], bool)

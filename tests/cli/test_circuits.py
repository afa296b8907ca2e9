"""import, list, show, delete, export and db on a fresh temporary catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
PEER = SHARED / "fixtures" / "peer-formats"


def test_db_current_then_upgrade_then_current(cli, db):
    first = cli("db", "current", "--json")
    if db.startswith("sqlite"):  # a file that does not exist: said so, and not created
        assert first.exit_code == 1 and "no catalog at" in first.stderr
        assert not Path(db.removeprefix("sqlite:///")).exists()
    else:  # an empty PostgreSQL database
        assert first.exit_code == 0, first.stderr
        info = json.loads(first.stdout)
        assert info["current"] is None and info["up_to_date"] is False
    up = cli("db", "upgrade", "--json")
    assert up.exit_code == 0, up.stderr
    upgraded = json.loads(up.stdout)
    info = json.loads(cli("db", "current", "--json").stdout)
    assert upgraded["current"] == info["head"]
    again = json.loads(cli("db", "current", "--json").stdout)
    assert again["current"] == info["head"] and again["up_to_date"] is True


def test_db_upgrade_migrates_an_out_of_date_catalog(cli, db):
    from catalog.store import Catalog

    cat = Catalog.open(db, check_schema=False)
    cat.upgrade("0001")
    assert cli("list").exit_code == 1  # refused: behind head
    assert "catalog db upgrade" in cli("list").stderr
    assert cli("db", "upgrade").exit_code == 0
    assert cli("list").exit_code == 0


def test_list_filters_and_json(cli, catalog_with, toy_circuit):
    ids = catalog_with(toy_circuit("ioi", ["a0.h0", "a1.h1"], ["m0"], name="one", tags=("x",)),
                       toy_circuit("induction", ["a1.h0"], name="two"))
    rows = json.loads(cli("list", "--json").stdout)
    assert [r["id"] for r in rows] == ids
    assert rows[0]["n_heads"] == 2 and rows[0]["n_mlps"] == 1
    only = json.loads(cli("list", "--task", "induction", "--json").stdout)
    assert [r["name"] for r in only] == ["two"]
    tagged = json.loads(cli("list", "--tag", "x", "--json").stdout)
    assert [r["name"] for r in tagged] == ["one"]
    table = cli("list")
    assert table.exit_code == 0 and "one" in table.stdout and "induction" in table.stdout


def test_list_of_an_empty_catalog_says_how_to_fill_it(cli):
    assert cli("db", "upgrade").exit_code == 0
    result = cli("list")
    assert result.exit_code == 0 and "catalog import" in result.stdout


def test_show_prints_provenance_metrics_and_roles(cli, catalog_with, toy_circuit):
    from dataclasses import replace

    c = toy_circuit("ioi", ["a0.h0", "a1.h1"], ["m0"], roles={"a1.h1": "name mover"}, name="toy",
                    scores={"m0": -4.0, "a1.h1": 2.0})
    c = replace(c, metrics={"faithfulness": 0.91, "cpr": 1.5, "cmd": 0.04,
                            "faithfulness_curve": [[0.1, 0.5], [1.0, 1.0]]})
    (cid,) = catalog_with(c)
    out = cli("show", cid)
    assert out.exit_code == 0, out.stderr
    for text in ("toy", "selection: top-k", "faithfulness: 0.91", "CPR: 1.5", "CMD: 0.04",
                 "attention heads (2)", "MLPs (1)", "name mover", "eap-ig"):
        assert text in out.stdout, text
    record = json.loads(cli("show", cid, "--json").stdout)
    assert record["metrics"]["faithfulness"] == 0.91
    assert {n["id"]: n["role"] for n in record["nodes"]}["a1.h1"] == "name mover"
    assert record["provenance"]["selection"]["rule"] == "top-k"
    assert cli("show", "ioi").stdout == out.stdout  # a task name means its newest circuit
    with_edges = cli("show", cid, "--edges", "2").stdout
    assert "edges (2 of 6, by |score|):" in with_edges
    listed = with_edges.split("by |score|):")[1]
    assert listed.index("m0->logits") < listed.index("a1.h1->logits")
    assert "input->" not in listed


def test_show_unknown_id_is_one_line_error(cli):
    assert cli("db", "upgrade").exit_code == 0
    result = cli("show", "42")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "catalog list" in result.stderr


def test_delete_asks_then_deletes(cli, catalog_with, toy_circuit):
    (cid,) = catalog_with(toy_circuit("ioi", ["a0.h0"]))
    refused = cli("delete", cid, input="n\n")
    assert refused.exit_code == 1 and cli("show", cid).exit_code == 0
    done = cli("delete", cid, "--yes")
    assert done.exit_code == 0, done.stderr
    assert cli("show", cid).exit_code == 1
    assert cli("delete", cid, "--yes").exit_code == 1


def test_delete_takes_names_and_task_refs_and_shows_what_goes(cli, catalog_with, toy_circuit):
    first, new = catalog_with(toy_circuit("ioi", ["a0.h0"], name="first"),
                            toy_circuit("ioi", ["a0.h0", "a1.h1"], ["m0"], name="second", tags=("x",)))
    asked = cli("delete", "IOI", input="n\n")  # a task name, any case: its newest circuit
    assert asked.exit_code == 1
    assert f"Delete circuit {new} 'second': ioi on toy-2l, eap-ig, 5 nodes and 6 edges, tags x" in asked.stdout
    gone = cli("delete", "first", "--yes")  # a circuit name
    assert gone.exit_code == 0 and gone.stdout.startswith(f"deleted circuit {first} 'first'")
    assert [r["id"] for r in json.loads(cli("list", "--json").stdout)] == [int(new)]
    assert [r["id"] for r in json.loads(cli("list", "--task", "IOI", "--json").stdout)] == [int(new)]
    unknown = cli("delete", "iox", "--yes")
    assert unknown.exit_code == 1 and "Did you mean 'ioi'" in unknown.stderr


@pytest.mark.parametrize("fmt", ["json", "graphml", "eap-ig"])
def test_export_then_import_round_trips_the_circuit(cli, catalog_with, tmp_path, fmt, toy_circuit):
    (cid,) = catalog_with(toy_circuit("ioi", ["a0.h0", "a1.h1"], ["m0"],
                                      scores={"a1.h1": 2.5}, roles={"a1.h1": "mover"}))
    path = tmp_path / f"c.{fmt}"
    out = cli("export", cid, "--format", fmt, "-o", path)
    assert out.exit_code == 0, out.stderr
    assert path.stat().st_size > 0
    imported = cli("import", path, "--model", "toy-2l", "--task", "ioi", "--json")
    assert imported.exit_code == 0, imported.stderr
    (new_id,) = json.loads(imported.stdout)["ids"]
    before = json.loads(cli("show", cid, "--json").stdout)
    after = json.loads(cli("show", new_id, "--json").stdout)
    assert {n["id"] for n in after["nodes"]} == {n["id"] for n in before["nodes"]}
    assert {e["id"]: e["score"] for e in after["edges"]} == {e["id"]: e["score"] for e in before["edges"]}


def test_export_to_stdout(cli, catalog_with, toy_circuit):
    (cid,) = catalog_with(toy_circuit("ioi", ["a0.h0"]))
    out = cli("export", cid, "--format", "json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["task"] == "ioi"


def test_export_unknown_format_lists_the_known_ones(cli, catalog_with, toy_circuit):
    (cid,) = catalog_with(toy_circuit("ioi", ["a0.h0"]))
    out = cli("export", cid, "--format", "pickle")
    assert out.exit_code == 1 and "graphml" in out.stderr


def test_import_every_peer_fixture(cli):
    if not PEER.is_dir():
        pytest.skip("../shared/fixtures/peer-formats not found: clone next to the shared folder "
                    "to run this test")
    files = sorted(p for p in PEER.iterdir() if p.name != "README.md")
    assert len(files) == 5
    # attribution graphs name no task the importer knows, so they get one
    tasks = {"circuit-tracer_dallas-austin_gemma-2-2b.json": "capital-of-state",
             "neuronpedia-circuit-tracer_son-clt-hp_gemma-2-2b.json": "next-token"}
    for path in files:
        extra = ("--task", tasks[path.name]) if path.name in tasks else ()
        result = cli("import", path, *extra, "--json")
        assert result.exit_code == 0, (path.name, result.stderr)
    rows = json.loads(cli("list", "--json").stdout)
    assert len(rows) >= 5
    assert {r["model"] for r in rows} >= {"gpt2-small", "gemma-2-2b"}


def test_import_missing_file_is_one_line_error(cli, tmp_path):
    result = cli("import", tmp_path / "nope.json")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert json.loads(cli("list", "--json").stdout) == []


def test_show_orders_nodes_by_score_and_json_is_the_library_model(cli, db, catalog_with):
    from catalog.graph import CircuitGraph, ModelShape
    from catalog.provenance import Circuit, Provenance, Source
    from catalog.store import Catalog
    from catalog.views import CircuitDetail

    graph = CircuitGraph.build(
        ModelShape("toy-2l", n_layers=2, n_heads=2, d_model=8), ["input", "a0.h0", "a0.h1", "a1.h0", "m1", "logits"],
        [("input", "a0.h0", "v", 1.0), ("input", "a0.h1", "v", 1.0), ("a0.h0", "a1.h0", "q", 0.5),
         ("a0.h1", "m1", None, 0.1), ("a1.h0", "logits", None, -3.0), ("m1", "logits", None, 0.2)],
        node_scores={"a0.h0": 0.2, "a0.h1": -5.0, "a1.h0": 1.0, "m1": 0.3})
    (cid,) = catalog_with(Circuit(graph=graph, task="ioi", provenance=Provenance(source=Source.IMPORT)))
    heads = cli("show", cid).stdout.split("attention heads (3):")[1].split("MLPs")[0]
    assert heads.index("a0.h1") < heads.index("a1.h0") < heads.index("a0.h0")  # by |score|
    record = json.loads(cli("show", cid, "--json").stdout)
    assert [n["id"] for n in record["nodes"]][:3] == ["a0.h1", "a1.h0", "m1"]
    assert record["edges"][0]["id"] == "a1.h0->logits"
    assert record == CircuitDetail.of(Catalog.open(db).get(int(cid))).model_dump(mode="json")


def test_show_attention_lists_what_each_head_attends_to(cli, db, toy_circuit):
    from catalog.attention import AttentionPatterns, PromptAttention
    from catalog.store import Catalog

    c = toy_circuit("ioi", ["a0.h1", "a1.h0"])
    patterns = AttentionPatterns(heads=("a0.h1", "a1.h0"), prompts=(PromptAttention(
        prompt="When Mary and John", tokens=("When", "Mary", "and", "John"), read_position=3,
        heads={"a0.h1": ((1, 0, 0, 0), (0.5, 0.5, 0, 0), (0.2, 0.2, 0.6, 0), (0.1, 0.6, 0.1, 0.2)),
               "a1.h0": ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0.05, 0.95))}),))
    with Catalog.open(db) as cat:
        run = cat.start_run(c.graph.shape, c.task, c.provenance)
        cid = cat.finish_run(run, c, patterns)
        plain = cat.add(toy_circuit("gt", ["a0.h0"]))
    out = cli("show", cid, "--attention")
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("a")}
    assert "Mary@1 0.60" in lines["a0.h1"] and "John@3 0.95" in lines["a1.h0"]
    assert "prompt 1: When Mary and John" in out.stdout
    js = cli("show", cid, "--attention", "--json")
    assert json.loads(js.stdout)["attention"] == patterns.model_dump(mode="json")
    assert json.loads(cli("show", cid, "--json").stdout)["attention"] is None
    none = cli("show", plain, "--attention")
    assert none.exit_code == 0 and "none kept" in none.stdout

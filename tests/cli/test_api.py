"""`catalog.api` does what the CLI does, with the same calls, and imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys


def test_importing_the_api_loads_neither_sqlalchemy_nor_torch():
    code = ("import sys, catalog.api as cc; cc.parse_component('L9H9'); "
            "print(sorted(m for m in ('sqlalchemy', 'torch', 'transformer_lens') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_and_cli_give_the_same_answers(cli, db, tmp_path):
    import catalog.api as cc

    cat = cc.open_catalog(db)
    ids = [a.id for a in cc.load_published(cat)]
    again = cc.load_published(cat)  # idempotent: every one is already there, under the same id
    assert [a.id for a in again] == ids and all(a.duplicate for a in again)
    via_api = cc.compare(cat, "ioi", "greater-than", model="gpt2-small").model_dump(mode="json")
    via_cli = json.loads(cli("compare", "ioi", "greater-than", "--model", "gpt2-small",
                             "--json").stdout)
    assert via_api == via_cli
    # a0.h1 (duplicate token / upstream at YY), a5.h5 and a6.h9 (induction / attend to YY)
    assert {c["id"] for c in via_api["shared"]} == {"a0.h1", "a5.h5", "a6.h9"}
    hits = cc.find(cat, "L0H1", model="gpt2-small")
    assert {h.task for h in hits} == {"ioi", "greater-than"}
    reuse = cc.reuse(cat, model="gpt2-small")
    assert reuse.model_dump(mode="json") == json.loads(cli("reuse", "--model", "gpt2-small",
                                                           "--json").stdout)
    out = tmp_path / "ioi.graphml"
    cc.write_circuit(cat.get(cat.resolve("ioi-wang2022")), "graphml", out)
    (back,) = cc.read_circuits(out)
    assert back.graph.heads == cat.get(cat.resolve("ioi-wang2022")).graph.heads


def test_unknown_api_name_is_an_attribute_error():
    import pytest

    import catalog.api as cc

    with pytest.raises(AttributeError):
        cc.no_such_function  # noqa: B018
    assert {"compare", "discover", "load_model", "open_catalog"} <= set(dir(cc))

"""`catalog --help`, list, show, compare, reuse, find, export, import and `transcoders list|show`
never import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from cli.app import main
sys.argv = ["catalog", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "transformer_lens", "transformers", "matplotlib")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def run_probe(args: list[str], cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    return json.loads(last) | {"stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture(scope="module")
def loaded_db(tmp_path_factory) -> tuple[Path, str, list[int]]:
    """A catalog with the published circuits, and a GraphML export of one (for `import`)."""
    tmp = tmp_path_factory.mktemp("notorch")
    db = str(tmp / "c.db")
    from catalog.published import load_published
    from catalog.store import Catalog

    ids = [a.id for a in load_published(Catalog.open(db))]
    return tmp, db, ids


@pytest.mark.slow
def test_light_commands_do_not_import_torch(loaded_db):
    tmp, db, ids = loaded_db
    out = tmp / "export.graphml"
    commands = [
        ["--help"],
        ["discover", "--help"],
        ["methods"],
        ["--db", db, "list"],
        ["--db", db, "show", str(ids[0])],
        ["--db", db, "compare", "ioi", "greater-than", "--model", "gpt2-small"],
        ["--db", db, "reuse", "--model", "gpt2-small"],
        ["--db", db, "find", "a0.h1"],
        ["--db", db, "export", str(ids[0]), "--format", "graphml", "-o", str(out)],
        ["--db", db, "import", str(out), "--task", "reimport"],
        ["transcoders", "list"],
        ["transcoders", "show", "catalog-default"],
    ]
    for args in commands:
        result = run_probe(args, tmp)
        assert result["code"] == 0, (args, result["stderr"])
        assert result["heavy"] == [], (args, result["heavy"])


@pytest.mark.slow
def test_draw_imports_matplotlib_but_not_torch(loaded_db):
    pytest.importorskip("matplotlib")
    tmp, db, ids = loaded_db
    result = run_probe(["--db", db, "draw", str(ids[0]), "-o", str(tmp / "drawn.svg")], tmp)
    assert result["code"] == 0, result["stderr"]
    assert result["heavy"] == ["matplotlib"] and (tmp / "drawn.svg").stat().st_size > 0

"""`catalog roles`, `intervene`, `repair` and `reuse --knockout` on bad input: one line, exit 1.

Every check here happens before a model is loaded, on a circuit over the embedded model's shape.
"""

from __future__ import annotations

import pytest

from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Circuit, Provenance, Source

EMBEDDED = ModelShape("catalog-default", n_layers=4, n_heads=4, d_model=128)


def _circuit(task: str) -> Circuit:
    graph = CircuitGraph.build(EMBEDDED, ["input", "a1.h0", "logits"],
                               [("input", "a1.h0", "v", 1.0), ("a1.h0", "logits", None, 1.0)])
    return Circuit(graph=graph, task=task, provenance=Provenance(source=Source.IMPORT))


@pytest.mark.parametrize("args, message", [
    (["intervene", "ioi", "--ablate", "a9.h0"], "a9.h0 does not exist in the model: catalog-default has 4 layers x 4 heads"),
    (["intervene", "ioi", "--ablate", "a1.h7"], "a1.h7 does not exist in the model"),
    (["intervene", "ioi", "--scale", "a2.h1=two"], "the scale 'two' is not a number"),
    (["intervene", "ioi", "--scale", "a2.h1"], "give COMPONENT=FACTOR"),
    (["intervene", "ioi", "--patch", "a1.h0@NOPE"], "Role 'NOPE' is not a position of task ioi; its roles are IO, S1"),
    (["intervene", "ioi"], "Nothing to do"),
    (["intervene", "ioi", "--from", "colored-objects", "--ablate", "a1.h0"], "give --patch COMPONENT too"),
    (["intervene", "ioi", "--ablate", "a1.h0", "--ablation", "resample"], "Unknown ablation 'resample'"),
    (["intervene", "nosuch", "--ablate", "a1.h0"], "No circuit for 'nosuch'"),
    (["roles", "nosuch"], "No circuit for 'nosuch'"),
    (["reuse", "--knockout"], "--knockout needs the tasks"),
    (["reuse", "ioi"], "only taken with --knockout"),
    (["reuse", "--knockout", "ioi", "ioi"], "named twice"),
    (["reuse", "--knockout", "ioi", "--top-k", "0"], "--top-k must be at least 1"),
    (["reuse", "--knockout", "ioi", "--controls", "-1"], "--controls must be 0 or more"),
    (["repair", "--task", "colored-objects:n_objects=5", "--from", "colored-objects", "--together"],
     "give them with --head"),
    (["repair", "--task", "colored-objects:n_objects", "--from", "colored-objects"], "is not key=value"),
])
def test_bad_input_gives_one_line(cli, catalog_with, args, message):
    catalog_with(_circuit("ioi"))
    result = cli(*args)
    assert result.exit_code == 1, result.output
    # Some checks happen after the model loaded (a role against the dataset's own roles): loading
    # prints nothing, so the error is still the only line.
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert result.stdout == ""
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_show_says_roles_are_not_measured_yet(cli, catalog_with):
    (cid,) = catalog_with(_circuit("ioi"))
    result = cli("show", cid)
    assert result.exit_code == 0
    assert "head roles: not measured (run `catalog roles REF`)" in result.stdout

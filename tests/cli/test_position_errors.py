"""Bad position input through the real commands: an unknown role, a role a circuit does not
have, a malformed role, a method that cannot score positions: one line on stderr, exit code 1."""

from __future__ import annotations

import pytest

from catalog.graph import CircuitGraph, ModelShape, Node
from catalog.provenance import Circuit, Provenance


@pytest.fixture
def positioned(catalog_with):
    shape = ModelShape("toy-2l", n_layers=2, n_heads=2)
    make = lambda task, ids: Circuit(CircuitGraph(shape, tuple(Node.of(i, score=1.0) for i in ids)), task,  # noqa: E731
                                     Provenance(source="discovery", method="eap-ig"))
    return catalog_with(make("ioi", ["a1.h0@END", "m0@S2"]), make("co", ["a1.h0@END", "m0@QOBJ"]))


@pytest.mark.parametrize("args, text", [
    (("compare", "ioi", "co", "--role", "S2"), "has no role S2. Its roles:"),
    (("compare", "ioi", "co", "--role", "NOPE"), "has no role NOPE"),
    (("find", "a1.h0@1END"), "not a component"),
    (("discover", "--task", "ioi", "--positions", "--method", "edge-patching"), "cannot score positions"),
    (("discover", "--task", "ioi:bogus=1"), "has no parameter bogus"),
    (("discover", "--task", "ioi:counterfactual"), "key=value"),
])
def test_bad_position_input_is_one_line(cli, positioned, args, text):
    result = cli(*args)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_compare_at_a_role_through_the_command(cli, positioned):
    result = cli("compare", "ioi", "co", "--role", "END", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"a1.h0@END"' in result.stdout

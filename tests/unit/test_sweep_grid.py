"""A sweep's grid: its cells, its file formats, and clear errors for bad grids."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError, UnknownKeyError
from catalog.sweeps import SweepSpec, get_executor
from catalog.sweeps.grid import DEFAULT_MODEL


def test_cells_are_the_product_in_grid_order_without_repeats():
    spec = SweepSpec(tasks=("ioi", "colored-objects", "ioi"), methods=("eap", "eap-ig"), seeds=(0, 1))
    keys = [c.key for c in spec.cells()]
    assert len(keys) == 8 == len(set(keys))
    assert keys[:3] == [f"ioi|eap|{DEFAULT_MODEL}|0", f"ioi|eap|{DEFAULT_MODEL}|1", f"ioi|eap-ig|{DEFAULT_MODEL}|0"]


def test_toml_and_yaml_files_give_the_same_spec(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text('tasks = ["ioi", "colored-objects"]\nmethods = ["eap"]\nseeds = [0, 1, 2]\nn = 16\n'
                    '[selection]\nrule = "top-k"\nvalue = 10\n')
    yaml = tmp_path / "grid.yaml"
    yaml.write_text("tasks: [ioi, colored-objects]\nmethods: [eap]\nseeds: [0, 1, 2]\nn: 16\n"
                    "selection: {rule: top-k, value: 10}\n")
    a, b = SweepSpec.from_file(toml), SweepSpec.from_file(yaml)
    assert a == b and len(a.cells()) == 6 and a.selection.describe() == "top-k 10 by |score|"


@pytest.mark.parametrize("text, match", [
    ('tasks = []\n', "tasks"),
    ('tasks = ["ioi"]\nseeds = [-1]\n', "seeds"),
    ('tasks = ["ioi"]\nn = 0\n', "n"),
    ('tasks = ["ioi"]\nworkers = 3\n', "workers"),  # not a grid key: a typo must not pass silently
    ('tasks = "ioi" "x"\n', "does not parse"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, match):
    f = tmp_path / "grid.toml"
    f.write_text(text)
    with pytest.raises(InvalidInputError, match=match) as e:
        SweepSpec.from_file(f)
    assert "\n" not in str(e.value)


def test_not_a_file_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="not a regular file"):
        SweepSpec.from_file(tmp_path)
    with pytest.raises(InvalidInputError, match=".toml, .yaml"):
        (tmp_path / "g.json").write_text("{}")
        SweepSpec.from_file(tmp_path / "g.json")
    with pytest.raises(UnknownKeyError, match="pool"):
        get_executor("pol")
    with pytest.raises(UnknownKeyError, match="ioi"):
        SweepSpec(tasks=("iio",)).check()

"""Position-resolved activation patching on the shipped embedded model agrees with an
independent per-position patching loop (IOI and Colored Objects), and IOI's MLP0 effect sits at S2."""

from __future__ import annotations

import os

# As catalog.discovery does: OpenMP's active wait makes a loaded machine's forward passes many
# times slower; it only takes effect if torch is not imported yet in this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the shared reference loop
from test_discovery_fixtures import per_position_reference  # noqa: E402

from catalog.discovery.positions import activation_patching_by_role, collapse  # noqa: E402
from catalog.models import load_model  # noqa: E402
from catalog.tasks import TASKS  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    return load_model(None, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("task, n", [("ioi", 8), ("colored-objects", 8)])
def test_activation_patching_by_role_agrees_with_a_per_position_loop(loaded, task, n):
    ds = TASKS[task].build(loaded, n=n, seed=3)
    got = activation_patching_by_role(loaded.model, ds, batch_size=8)
    # Both runs are identical before the earliest difference; one position before it is kept,
    # to see that it scores 0.
    start = max(0, int((ds.clean != ds.corrupt).any(0).nonzero().min()) - 1)
    ref = per_position_reference(loaded.model, ds, "counterfactual", start)
    skipped = ref.keys() - got.keys()  # roles before every example's first difference
    assert all(abs(ref[k]) < 1e-5 for k in skipped), {k: ref[k] for k in skipped if abs(ref[k]) >= 1e-5}
    assert got.keys() <= ref.keys()
    keys = sorted(got)
    a, b = np.array([got[k] for k in keys]), np.array([ref[k] for k in keys])
    r = float(np.corrcoef(a, b)[0, 1])
    print(f"{task}: {len(keys)} (component, role) nodes, Pearson r = {r:.6f}, max |diff| = {np.abs(a - b).max():.2e}")
    assert r >= 0.999
    assert np.abs(a - b).max() < 1e-3
    top = max(got, key=lambda k: abs(got[k]))
    mlp0 = {k: v for k, v in got.items() if k.startswith("m0@")}
    best_mlp0 = max(mlp0, key=lambda k: abs(mlp0[k]))
    print(f"{task}: largest node {top} = {got[top]:.3f}; MLP0 at {best_mlp0} carries "
          f"{mlp0[best_mlp0] / collapse(got)['m0']:.0%} of m0's summed effect")
    # The shipped model's MLP0 acts where the counterfactual puts its repeated name (IOI: S2) or
    # its queried object (Colored Objects: QOBJ), as an all-position score cannot show.
    assert best_mlp0 == {"ioi": "m0@S2", "colored-objects": "m0@QOBJ"}[task]

"""Position-resolved activation patching on the shipped embedded model agrees with an
independent per-position patching loop (IOI and Colored Objects), and IOI's MLP0 effect sits at S2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from catalog.discovery.positions import activation_patching_by_role, collapse  # noqa: E402
from catalog.models import load_model  # noqa: E402
from catalog.tasks import TASKS  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    return load_model(None, device="cpu")


def per_position_loop(model, ds) -> dict[str, float]:
    """One component at one position per forward pass (TransformerLens per-head results, hooks
    written here), each example's metric drop filed under the role its prompt gives that position.

    Positions before the earliest clean/corrupt difference of the batch are left out: both runs
    are identical there (one position before it is kept, to see that it scores 0)."""
    model.set_use_attn_result(True)
    try:
        with torch.no_grad():
            n, t = ds.clean.shape
            base = ds.metric(model(ds.clean)).double()
            _, cache = model.run_with_cache(ds.corrupt)
            differs = (ds.clean != ds.corrupt).any(0).nonzero()
            start = max(0, int(differs.min()) - 1)
            out: dict[str, float] = {}
            for layer in range(model.cfg.n_layers):
                for head in [*range(model.cfg.n_heads), None]:
                    name = f"blocks.{layer}.attn.hook_result" if head is not None else f"blocks.{layer}.hook_mlp_out"
                    ref = cache[name]
                    comp = f"a{layer}.h{head}" if head is not None else f"m{layer}"
                    for pos in range(start, t):
                        def hook(act, hook, head=head, ref=ref, pos=pos):
                            if head is None:
                                act[:, pos] = ref[:, pos]
                            else:
                                act[:, pos, head] = ref[:, pos, head]
                            return act

                        drop = base - ds.metric(model.run_with_hooks(ds.clean, fwd_hooks=[(name, hook)])).double()
                        for b in range(n):
                            r = int(ds.role_ids[b, pos])
                            if r >= 0:
                                key = f"{comp}@{ds.role_names[r]}"
                                out[key] = out.get(key, 0.0) + float(drop[b]) / n
            return out
    finally:
        model.set_use_attn_result(False)


@pytest.mark.slow
@pytest.mark.parametrize("task, n", [("ioi", 8), ("colored-objects", 8)])
def test_activation_patching_by_role_agrees_with_a_per_position_loop(loaded, task, n):
    ds = TASKS[task].build(loaded, n=n, seed=3)
    got = activation_patching_by_role(loaded.model, ds, batch_size=8)
    ref = per_position_loop(loaded.model, ds)
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

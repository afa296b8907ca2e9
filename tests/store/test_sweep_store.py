"""Sweeps in the store: cells claimed once, states recorded, a closed sweep never leaves a cell running."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError, NotFoundError

CELLS = [{"key": f"ioi|eap|m|{s}", "task": "ioi", "method": "eap", "model": "m", "seed": s} for s in range(3)]


def test_a_cell_is_claimed_once_and_its_end_recorded(catalog):
    sid = catalog.sweeps.create({"tasks": ["ioi"]}, CELLS, "pool", 2)
    k0, k1, k2 = (c["key"] for c in CELLS)
    assert catalog.sweeps.claim(sid, k0, "host:1")
    assert not catalog.sweeps.claim(sid, k0, "host:2")  # already running elsewhere
    catalog.sweeps.finish(sid, k0, run_id=None, circuit_id=None, seconds=1.5, faithfulness=0.9)
    assert not catalog.sweeps.claim(sid, k0, "host:2")  # done: never run twice
    assert catalog.sweeps.claim(sid, k1, "host:1")
    catalog.sweeps.fail(sid, k1, "ValueError: boom")
    record = catalog.sweeps.close(sid, interrupted=False, wall_seconds=3.0, cost={"workers": {}})
    cells = {c.key: c for c in record.cells}
    assert (cells[k0].status, cells[k0].faithfulness, cells[k0].attempts) == ("done", 0.9, 1)
    assert (cells[k1].status, cells[k1].error) == ("failed", "ValueError: boom")
    assert cells[k2].status == "interrupted"  # never started before the sweep ended
    assert record.status == "failed" and record.counts()["done"] == 1
    # a failed or interrupted cell may run again (resume); a second attempt is counted
    assert catalog.sweeps.claim(sid, k1, "host:3")
    assert catalog.sweeps.get(sid).cells[1].attempts == 2


def test_closing_marks_running_cells_interrupted_and_a_full_sweep_done(catalog):
    sid = catalog.sweeps.create({"tasks": ["ioi"]}, CELLS[:1], "pool", 1)
    catalog.sweeps.claim(sid, CELLS[0]["key"], "host:1")  # its worker was killed
    record = catalog.sweeps.close(sid, interrupted=True, wall_seconds=1.0, cost={})
    assert record.status == "interrupted" and record.cells[0].status == "interrupted"
    assert "ended before" in record.cells[0].error
    catalog.sweeps.reopen(sid, "pool", 1)
    assert catalog.sweeps.claim(sid, CELLS[0]["key"], "host:2")
    catalog.sweeps.finish(sid, CELLS[0]["key"], run_id=None, circuit_id=None, seconds=1.0, faithfulness=None)
    assert catalog.sweeps.close(sid, interrupted=False, wall_seconds=1.0, cost={}).status == "done"
    assert [s.id for s in catalog.sweeps.all()] == [sid]


def test_bad_ids_and_empty_grids(catalog):
    with pytest.raises(NotFoundError, match="No sweep #9"):
        catalog.sweeps.get(9)
    for bad in ("x", "0", "-1", "99999999999999999999999"):
        with pytest.raises(InvalidInputError, match="not a sweep id"):
            catalog.sweeps.get(bad)
    with pytest.raises(InvalidInputError, match="at least one cell"):
        catalog.sweeps.create({}, [], "pool", 1)

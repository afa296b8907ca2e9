"""Task roles: every position of every prompt has one role, the named ones sit on the right
tokens, task names carry build options, and the IOI counterfactuals change what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from catalog.errors import TaskError  # noqa: E402
from catalog.models.vocab import build_tokenizer, task_words  # noqa: E402
from catalog.tasks import TASKS, task_from_file  # noqa: E402
from catalog.tasks.base import parse_task_ref, task_name  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(task_words())


def _token_of(tok, ds, i: int, role: str) -> str:
    t = (ds.role_ids[i] == ds.role_names.index(role)).nonzero()
    assert t.numel() == 1, f"{role} is not exactly one position in example {i}"
    return tok.decode([int(ds.clean[i, int(t)])]).strip()


@pytest.mark.parametrize("slug, named", [
    ("ioi", ("IO", "S1", "S1+1", "S2", "END")),
    ("colored-objects", ("QOBJ", "OBJ", "COLOR", "ALT_OBJ", "ALT_COLOR", "OPT_OBJ", "OPT_COLOR", "END")),
    ("greater-than", ("YY", "END")),
    ("induction", ("A1", "B1", "A2")),
])
def test_every_position_has_one_role_and_the_named_ones_are_in_every_example(slug, named, tok):
    ds = TASKS[slug].build(tok, n=24, seed=5)
    for i in range(len(ds)):
        length = int(ds.positions[i]) + 1
        ids = ds.role_ids[i].tolist()
        assert all(r >= 0 for r in ids[:length]) and all(r == -1 for r in ids[length:])
        present = [ds.role_names[r] for r in ids[:length]]
        assert len(present) == len(set(present)), "a role names one position per prompt"
        assert set(named) <= set(present)
    assert ds[3:7].role_ids.shape == (4, ds.clean.shape[1])


def test_named_roles_sit_on_their_tokens(tok):
    ioi = TASKS["ioi"].build(tok, n=8, seed=1)
    for i in range(8):
        io, s = tok.decode([int(ioi.answers[i])]).strip(), tok.decode([int(ioi.wrong_answers[i])]).strip()
        assert (_token_of(tok, ioi, i, "IO"), _token_of(tok, ioi, i, "S1"), _token_of(tok, ioi, i, "S2")) == (io, s, s)
        assert int((ioi.role_ids[i] == ioi.role_names.index("END")).nonzero()) == int(ioi.positions[i])
    co = TASKS["colored-objects"].build(tok, n=8, seed=1)
    for i in range(8):
        assert _token_of(tok, co, i, "QOBJ") == _token_of(tok, co, i, "OBJ")
        assert _token_of(tok, co, i, "COLOR").title() == tok.decode([int(co.answers[i])]).strip()
        assert _token_of(tok, co, i, "ALT_COLOR").title() == tok.decode([int(co.wrong_answers[i])]).strip()
        first = int(co.first_difference()[i])
        assert co.role_names[int(co.role_ids[i, first])] == "QOBJ"  # the counterfactual changes QOBJ only
    gt = TASKS["greater-than"].build(tok, n=8, seed=1)
    for i in range(8):
        assert int(_token_of(tok, gt, i, "YY")) == int(gt.extra["yy"][i])
    ind = TASKS["induction"].build(tok, n=8, seed=1)
    for i in range(8):
        assert _token_of(tok, ind, i, "A1") == _token_of(tok, ind, i, "A2")
        assert tok.decode([int(ind.answers[i])]).strip() == _token_of(tok, ind, i, "B1")


@pytest.mark.parametrize("cf, changed", [
    ("abc", {"IO", "S1", "S2"}), ("s2", {"S2"}), ("io-swap", {"IO"}), ("s1-swap", {"S1"}), ("s2-swap", {"S2"}),
])
def test_ioi_counterfactuals_change_exactly_their_names(cf, changed, tok):
    ds = TASKS["ioi"].build(tok, n=12, seed=2, counterfactual=cf)
    for i in range(12):
        at = {ds.role_names[int(ds.role_ids[i, t])] for t in (ds.clean[i] != ds.corrupt[i]).nonzero().flatten()}
        assert at == changed
        if cf == "s2-swap":  # S2 takes the IO name: the repeated name, and the answer, flip
            s2 = int((ds.role_ids[i] == ds.role_names.index("S2")).nonzero())
            assert int(ds.corrupt[i, s2]) == int(ds.answers[i])


def test_task_names_carry_their_options():
    assert parse_task_ref("ioi:counterfactual=s2-swap") == ("ioi", {"counterfactual": "s2-swap"})
    assert task_name("ioi", TASKS["ioi"], {"counterfactual": "s2-swap"}) == "ioi:counterfactual=s2-swap"
    assert task_name("ioi", TASKS["ioi"], {"counterfactual": "abc"}) == "ioi"  # the default adds nothing
    with pytest.raises(TaskError, match="key=value"):
        parse_task_ref("ioi:counterfactual")


def test_a_prompt_file_names_positions_by_index_or_marker(tmp_path: Path, tok):
    path = tmp_path / "names.jsonl"
    rec = {"clean": "When Mary and John went to the store , John gave a drink to",
           "corrupt": "When Mary and John went to the store , Paul gave a drink to",
           "answer": "Mary", "wrong_answer": "John"}
    path.write_text(json.dumps({**rec, "positions": {"IO": 1, "S2": "John gave"}}) + "\n" + json.dumps(rec) + "\n")
    ds = task_from_file(path).build(tok, n=2, seed=0)
    assert _token_of(tok, ds[0:1], 0, "IO") == "Mary" and _token_of(tok, ds[0:1], 0, "S2") == "John"
    assert ds.role_names[int(ds.role_ids[0, 3])] == "IO+1"  # BOS, When, Mary (index 1 after BOS), and
    second = {ds.role_names[r] for r in ds.role_ids[1].tolist() if r >= 0}
    assert second == {"OTHER", "END"}  # no positions given: END and everything else


@pytest.mark.parametrize("positions, message", [
    ({"IO": "Nobody"}, "not in the clean prompt"),
    ({"IO": 99}, "outside the clean prompt"),
    ({"1x": 2}, "not a role name"),
    ([1, 2], "must be an object"),
])
def test_bad_positions_in_a_prompt_file_are_one_line_errors(tmp_path: Path, tok, positions, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"clean": "When Mary and John went", "corrupt": "When Paul and John went",
                                "answer": "Mary", "wrong_answer": "John", "positions": positions}) + "\n")
    with pytest.raises(TaskError, match=message) as err:
        task_from_file(path).build(tok, n=1, seed=0)
    assert "\n" not in str(err.value)


def test_a_role_the_task_does_not_have_is_a_one_line_error(tok):
    ds = TASKS["greater-than"].build(tok, n=2, seed=0)
    with pytest.raises(TaskError, match="has no role S2. Its roles: .*YY"):
        ds.role_index("S2")

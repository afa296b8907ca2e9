"""Task datasets: determinism, single-token answers, equal-length pairs, metric signs, held-out
splits, JSONL errors, and adaptation to GPT-2-style BPE versus the embedded word-level tokenizer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from catalog.errors import TaskError, UnknownKeyError
from catalog.models.vocab import build_tokenizer, task_words
from catalog.tasks import (
    TASKS,
    get_task,
    ioi,
    task_from_file,
)
from catalog.tasks import colored_objects as co
from catalog.tasks.examples import held_out


@pytest.fixture(scope="module")
def words_tok():
    """The embedded model's word-level tokenizer (built in memory; no weights involved)."""
    return build_tokenizer(task_words())


def _bpe(corpus: list[str], vocab_size: int = 4000):
    """A GPT-2-style byte-level BPE tokenizer trained offline on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def bpe_tok():
    corpus = [e.clean + " " + e.answer for e in ioi.examples(400, 1)]
    corpus += [e.clean + " " + e.answer for e in co.examples(300, 1)] * 2
    return _bpe(corpus)


@pytest.mark.parametrize("slug", sorted(TASKS))
def test_tasks_are_deterministic_and_well_formed(slug: str, words_tok) -> None:
    a = TASKS[slug].build(words_tok, n=24, seed=3)
    b = TASKS[slug].build(words_tok, n=24, seed=3)
    c = TASKS[slug].build(words_tok, n=24, seed=4)
    assert torch.equal(a.clean, b.clean) and a.dataset_hash == b.dataset_hash
    assert a.dataset_hash != c.dataset_hash
    assert a.clean.shape == a.corrupt.shape and len(a) == 24
    assert (a.clean[:, 0] == words_tok.bos_token_id).all()
    rows = torch.arange(len(a))
    # the read position is the last real token: everything after it is padding
    assert (a.clean[rows, a.positions] != a.pad_id).all()
    for i in range(len(a)):
        assert (a.clean[i, a.positions[i] + 1:] == a.pad_id).all()
    assert (a.answers != a.wrong_answers).all()
    assert not torch.equal(a.clean, a.corrupt)


def test_metric_signs_by_hand(words_tok) -> None:
    ds = TASKS["ioi"].build(words_tok, n=4, seed=0)
    logits = torch.zeros(4, ds.clean.shape[1], len(words_tok))
    rows = torch.arange(4)
    logits[rows, ds.positions, ds.answers] = 3.0
    logits[rows, ds.positions, ds.wrong_answers] = 1.0
    assert torch.allclose(ds.metric(logits), torch.full((4,), 2.0))
    assert ds.correct(logits).all()
    logits[rows, ds.positions, ds.wrong_answers] = 5.0
    assert torch.allclose(ds.metric(logits), torch.full((4,), -2.0))
    assert not ds.correct(logits).any()
    # slicing keeps the metric per example
    assert torch.allclose(ds[1:3].metric(logits[1:3]), ds.metric(logits)[1:3])


def test_greater_than_probability_difference(words_tok) -> None:
    ds = TASKS["greater-than"].build(words_tok, n=3, seed=0)
    years = ds.shared["year_ids"]
    final = torch.full((3, len(words_tok)), -1e4)
    yy = ds.extra["yy"]
    final[torch.arange(3), years[yy + 1]] = 10.0  # all mass on the year after YY
    assert torch.allclose(ds.metric(final), torch.ones(3), atol=1e-3) and ds.correct(final).all()
    final = torch.full((3, len(words_tok)), -1e4)
    final[torch.arange(3), years[yy]] = 10.0  # all mass on YY itself: not greater
    assert torch.allclose(ds.metric(final), -torch.ones(3), atol=1e-3) and not ds.correct(final).any()
    assert all(p.endswith(p.split()[-1]) and len(p.split()[-1]) == 2 for p in ds.prompts)


def test_ioi_counterfactuals_and_orders() -> None:
    abc = ioi.examples(40, 0, counterfactual="abc")
    s2 = ioi.examples(40, 0, counterfactual="s2")
    for e in abc:
        assert e.answer not in e.corrupt.split() or e.wrong not in e.corrupt
    for e in s2:
        # s2: only the subject's second mention changes
        diff = [(x, y) for x, y in zip(e.clean.split(), e.corrupt.split()) if x != y]
        assert len(diff) == 1 and diff[0][0].rstrip(",.") == e.wrong
    orders = {e.meta["order"] for e in abc}
    assert orders == {"ABBA", "BABA"}
    first = abc[0]
    assert first.clean.index(first.answer) < first.clean.index(first.wrong)  # ABBA: IO first


def first_clause_names(text: str) -> list[str]:
    return [w.strip(",.") for w in text.split() if w.strip(",.") in ioi.NAMES][:3]


@pytest.mark.parametrize("order", ["ABC", "BAC", "BCA"])
def test_ioi_third_name_variant_is_well_posed(order: str, words_tok) -> None:
    exs = ioi.third_name_examples(30, 3, split="test", order=order)
    for e in exs:
        names = first_clause_names(e.clean)
        givers = [w.strip(",.") for w in e.clean.split() if w.strip(",.") in ioi.NAMES][3:]
        # three distinct names, the answer in the asked position, the other two give together
        assert len(set(names)) == 3 and names[order.index("A")] == e.answer
        assert givers == [n for n in names if n != e.answer] and givers[-1] == e.wrong
        assert held_out(*sorted((e.answer, names[order.index("B")])))  # the (A, B) pair is held out
        assert not set(first_clause_names(e.corrupt)) & set(names)  # abc: three other names
    ds = get_task("ioi").build(words_tok, n=12, seed=1, variant="third-name", order=order)
    assert ds.clean.shape == ds.corrupt.shape and ds.spec["variant"] == "third-name"
    for k in range(len(ds)):  # each name's role sits on that name: IO on A, B1/C1 and B2/C2 on the givers
        at = {ds.role_names[int(r)]: t for t, r in enumerate(ds.role_ids[k]) if int(r) >= 0}
        word = {role: words_tok.decode([int(ds.clean[k, at[role]])]).strip() for role in ("IO", "B1", "C1", "B2", "C2")}
        assert word["IO"] == words_tok.decode([int(ds.answers[k])]).strip()
        assert word["B1"] == word["B2"] != word["C1"] == word["C2"] == words_tok.decode([int(ds.wrong_answers[k])]).strip()
        names = first_clause_names(words_tok.decode(ds.clean[k].tolist()))
        assert at["IO"] < at["B2"] and names.index(word["IO"]) == order.index("A")
    for e in ioi.third_name_examples(40, 0, split="train", templates="train", order=order):
        names = first_clause_names(e.clean)
        assert not any(held_out(*sorted((e.answer, n))) for n in names if n != e.answer)


def test_ioi_third_name_option_errors(words_tok) -> None:
    with pytest.raises(TaskError, match="order must be one of mixed, ABC, BAC, BCA"):
        get_task("ioi").build(words_tok, n=2, seed=0, variant="third-name", order="ABBA")
    with pytest.raises(TaskError, match="only the abc counterfactual"):
        get_task("ioi").build(words_tok, n=2, seed=0, variant="third-name", counterfactual="s2")
    with pytest.raises(TaskError, match="variant must be one of"):
        get_task("ioi").build(words_tok, n=2, seed=0, variant="four-names")
    assert {e.meta["order"] for e in ioi.third_name_examples(6, 0)} == {"ABC", "BAC", "BCA"}


def test_held_out_splits_do_not_mix() -> None:
    for e in ioi.examples(60, 0, split="test"):
        assert held_out(*sorted((e.answer, e.wrong)))
    for e in ioi.examples(60, 0, split="train", templates="train"):
        assert not held_out(*sorted((e.answer, e.wrong)))
    heldout_starts = {t.split("[")[0] for t in ioi.HELDOUT_TEMPLATES}
    assert all(any(e.clean.startswith(s) for s in heldout_starts)
               for e in ioi.examples(30, 0, templates="heldout"))
    def object_sets(text: str) -> list[list[str]]:
        return [[o for o in co.OBJECTS for c in co.COLORS if re.search(rf"\b{c} {o}\b", q)]
                for q in text.split("\nQ:")]

    for e in co.examples(40, 0, split="test"):
        assert co.objects_held_out(object_sets(e.clean)[-1])
    for e in co.examples(40, 0, split="train", shots=2):
        sets = object_sets(e.clean)
        assert len(sets) == 3 and not any(co.objects_held_out(s) for s in sets)


def test_colored_objects_counterfactual_asks_another_object() -> None:
    for e in co.examples(30, 2, n_objects=4):
        assert e.clean[:-20] == e.corrupt[:-20] or e.clean.rsplit("\nQ:", 1)[0] == e.corrupt.rsplit("\nQ:", 1)[0]
        asked = e.corrupt.rsplit("the ", 1)[1].split("?")[0]
        assert f"{e.wrong.lower()} {asked}" in e.corrupt.rsplit("\nQ:", 1)[-1]
        assert e.clean.count(", and ") == 2  # one-shot: two questions


def test_tokenizer_adaptation_bpe_vs_word_level(words_tok, bpe_tok) -> None:
    w = TASKS["ioi"].build(words_tok, n=8, seed=0)
    b = TASKS["ioi"].build(bpe_tok, n=8, seed=0)
    assert w.prompts == b.prompts
    for i in range(8):
        name = w.prompts[i].split()[1]
        assert words_tok.decode([int(w.answers[i])]) in ioi.NAMES
        assert bpe_tok.decode([int(b.answers[i])]).startswith(" ")  # " Mary" in BPE
        assert name.rstrip(",") in w.prompts[i]
    cb = TASKS["colored-objects"].build(bpe_tok, n=4, seed=0)
    assert all(bpe_tok.decode([int(t)]).strip().istitle() for t in cb.answers)


def test_words_that_are_not_single_tokens_are_an_error(bpe_tok) -> None:
    small = _bpe([e.clean for e in ioi.examples(5, 0)], vocab_size=300)
    with pytest.raises(TaskError, match="not single tokens|tokens"):
        TASKS["ioi"].build(small, n=20, seed=0)


def test_unknown_task_suggests() -> None:
    with pytest.raises(UnknownKeyError, match="Did you mean 'ioi'"):
        get_task("ioj")
    with pytest.raises(TaskError, match="unknown option"):
        TASKS["ioi"].build(None, n=2, seed=0, colour="red")
    with pytest.raises(TaskError, match="counterfactual must be one of"):
        ioi.examples(2, 0, counterfactual="xyz")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_task_from_file(tmp_path: Path, words_tok) -> None:
    rec = {"clean": "When Mary and John went to the store, John gave a drink to",
           "corrupt": "When Mary and John went to the store, Paul gave a drink to",
           "answer": "Mary", "wrong_answer": "John"}
    spec = task_from_file(_write(tmp_path / "mine.jsonl", [json.dumps(rec)] * 3))
    ds = spec.build(words_tok, n=10, seed=0)
    assert len(ds) == 3 and ds.task == "mine"
    assert words_tok.decode([int(ds.answers[0])]) == "Mary"
    assert len(spec.build(words_tok, n=2, seed=0)) == 2


@pytest.mark.parametrize(("lines", "message"), [
    ([], "is empty"),
    (['{"clean": "a"', ], "line 1: not valid JSON"),
    (['{"clean": "x", "corrupt": "y", "answer": "Mary", "wrong_answer": "John"}', "[1]"], "line 2: expected a JSON object"),
    (['{"clean": "x", "corrupt": "y", "answer": "Mary"}'], "missing key.*wrong_answer"),
])
def test_task_file_errors(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        task_from_file(_write(tmp_path / "bad.jsonl", lines))


def test_task_file_token_errors(tmp_path: Path, words_tok) -> None:
    two_tokens = {"clean": "When Mary and John went to the store, John gave a drink to",
                  "corrupt": "When Mary and John went to the store, John gave a drink to",
                  "answer": "Mary John", "wrong_answer": "John"}
    with pytest.raises(TaskError, match="line|2 tokens"):
        task_from_file(_write(tmp_path / "a.jsonl", [json.dumps(two_tokens)])).build(words_tok, n=1, seed=0)
    uneven = dict(two_tokens, answer="Mary", corrupt="When Mary and John went to the store, John gave to")
    with pytest.raises(TaskError, match="same length"):
        task_from_file(_write(tmp_path / "b.jsonl", [json.dumps(uneven)])).build(words_tok, n=1, seed=0)
    with pytest.raises(TaskError, match="does not exist"):
        task_from_file(tmp_path / "missing.jsonl")


def test_task_names_ignore_case_and_suggest_the_nearest():
    from catalog.errors import UnknownKeyError
    from catalog.tasks import get_task

    assert get_task("IOI").slug == "ioi" and get_task("Colored_Objects").slug == "colored-objects"
    with pytest.raises(UnknownKeyError, match="Did you mean 'greater-than'"):
        get_task("Greater-Thn")

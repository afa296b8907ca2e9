"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593).

"When Mary and John went to the store, John gave a drink to" -> " Mary". Wang et al.'s fifteen
templates in both orders (ABBA: IO first; BABA: S first). Metric: logit(IO) - logit(S).
Counterfactuals: ``abc`` (default, Wang et al.'s reference distribution: the three name slots
filled with three other names, so no name is repeated), ``s2`` (only the second subject mention
replaced by a third name, as in Merullo et al.), ``io-swap`` (only the indirect object replaced
by a third name), ``s1-swap`` (only the first subject mention replaced by a third name) and
``s2-swap`` (the second subject mention swapped for the indirect object's name, so the repeated
name, and with it the answer, flips).

Roles (see `catalog.tasks.roles`): ``IO``, ``S1`` and ``S2`` at the names, ``S1+1`` the token
after the first subject mention, ``END`` the last token; the rest are slots (``IO+1``, ``S2+3``...).

Held-out parts: ``split="test"`` draws only (IO, S) name pairs never used in training
(``split="train"`` only the others); ``templates="heldout"`` the three templates kept out of
training.

``variant="third-name"`` is a well-posed variant with three names: the first clause names the
indirect object A and two subjects B and C, and the second clause has B and C give together, so
A is still the only answer: "Then, Mary, John and Kelly went to the store. John and Kelly gave a
drink to" -> Mary. ``order`` is where A stands among the three (``ABC``, ``BAC``, ``BCA``); the
givers keep their first-clause order. A rule "the name that is not S2" cannot pass it: two names
are not S2 there. Its roles: ``IO`` at A, ``B1`` and ``C1`` at the givers' first mentions,
``B2`` and ``C2`` at their mentions in the second clause (C, the last giver, is the wrong answer
the metric compares against), ``END`` and slots.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, TaskSpec
from catalog.tasks.examples import (
    SPLITS,
    Example,
    assemble,
    check_choice,
    held_out,
    pick_templates,
)

NAMES = (
    "Mary", "John", "Michael", "David", "James", "Robert", "Joseph", "Daniel", "Andrew", "Ryan",
    "Jason", "Sarah", "William", "Brian", "Eric", "Adam", "Kevin", "Steven", "Thomas", "Rachel",
    "Laura", "Richard", "Amy", "Mark", "Emily", "Charles", "Jacob", "Patrick", "Sean", "Kelly",
    "Paul", "Scott", "Lisa", "Alexander", "Jesse", "Katie", "Samuel", "Anthony", "Jennifer",
    "Elizabeth",
)
PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
OBJECTS = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")

# Wang et al.'s BABA templates; [B] is the subject, [A] the indirect object (the answer).
TEMPLATES = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
)
# Kept out of the embedded model's training: every word in them also occurs in a training template,
# so accuracy on them measures generalisation to a new arrangement, not to new words.
HELDOUT_TEMPLATES = (TEMPLATES[5], TEMPLATES[7], TEMPLATES[11])

COUNTERFACTUALS = ("abc", "s2", "io-swap", "s1-swap", "s2-swap")
#: The positions IOI names (every other position is a slot relative to one of these).
KEY_ROLES = ("IO", "S1", "S1+1", "S2", "END")
ORDERS = ("mixed", "ABBA", "BABA")
VARIANTS = ("two-names", "third-name")
#: Where the indirect object A stands among the three names of the ``third-name`` variant.
THIRD_NAME_ORDERS = ("mixed", "ABC", "BAC", "BCA")


def fill(template: str, first: str, second: str, subject: str, place: str, obj: str) -> str:
    """The prompt text: the template with its two first mentions, S2, place and object, minus the
    final answer slot."""
    return fill_marked(template, first, second, subject, place, obj)[0]


_SLOT_RE = re.compile(r"\[(A|B|PLACE|OBJECT)\]")

#: One slot's filling: its pieces of text, each with the name of the mark it sets (or None).
Pieces = list[tuple[str, str | None]]


def _splice(body: str, slots: re.Pattern[str], fill_slot: Callable[[str], Pieces]) -> tuple[str, dict[str, int]]:
    """`body` with each `slots` match replaced by ``fill_slot(slot name)``, and the character index
    in the result of each named piece (a later piece of the same name wins).

    >>> _splice("[A] met [B]", _SLOT_RE, lambda slot: [(slot.lower() * 2, slot)])
    ('aa met bb', {'A': 0, 'B': 7})
    """
    out: list[str] = []
    at: dict[str, int] = {}
    size, last = 0, 0
    for m in slots.finditer(body):
        for text, key in [(body[last:m.start()], None), *fill_slot(m[1])]:
            if key is not None:
                at[key] = size
            out.append(text)
            size += len(text)
        last = m.end()
    out.append(body[last:])
    return "".join(out), at


def fill_marked(template: str, first: str, second: str, subject: str, place: str,
                obj: str) -> tuple[str, dict[str, int]]:
    """`fill`, and the character index of each name slot: ``first``, ``second`` (the two first
    mentions, in order) and ``s2`` (the second subject mention).

    >>> fill_marked("When [B] and [A] met, [B] gave it to [A]", "Ann", "Bob", "Bob", "x", "y")
    ('When Ann and Bob met, Bob gave it to', {'first': 5, 'second': 13, 's2': 22})
    """
    names = chain([("first", first), ("second", second)], repeat(("s2", subject)))

    def fill_slot(slot: str) -> Pieces:
        if slot in ("A", "B"):
            key, word = next(names)
            return [(word, key)]
        return [(place if slot == "PLACE" else obj, None)]

    return _splice(template[: template.rindex("[A]")].rstrip(), _SLOT_RE, fill_slot)


def sample_pair(rng: random.Random, split: str, names: tuple[str, ...] = NAMES) -> tuple[str, str]:
    """An (IO, S) pair from the requested split of unordered name pairs."""
    while True:
        io, s = rng.sample(names, 2)
        if split == "all" or held_out(*sorted((io, s))) == (split == "test"):
            return io, s


def fill_third_name(template: str, names: tuple[str, str, str], givers: tuple[str, str], place: str,
                    obj: str) -> str:
    """A template's prompt with three first mentions ("X, Y and Z") and two givers ("B and C").

    >>> fill_third_name("Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    ...                 ("Mary", "John", "Kelly"), ("John", "Kelly"), "store", "drink")
    'Then, Mary, John and Kelly went to the store. John and Kelly gave a drink to'
    """
    return fill_third_name_marked(template, names, givers, place, obj)[0]


_THIRD_RE = re.compile(r"\[(N|G|PLACE|OBJECT)\]")


def fill_third_name_marked(template: str, names: tuple[str, str, str], givers: tuple[str, str],
                           place: str, obj: str) -> tuple[str, dict[str, int]]:
    """`fill_third_name`, and the character index of each name: ``n0``, ``n1``, ``n2`` (the first
    clause's three names, in order) and ``g0``, ``g1`` (the two givers).

    >>> fill_third_name_marked("[PLACE]: [B] and [A] met; [B] gave it to [A]", ("Ann", "Bob", "Cy"),
    ...                        ("Bob", "Cy"), "Home", "x")
    ('Home: Ann, Bob and Cy met; Bob and Cy gave it to', {'n0': 6, 'n1': 11, 'n2': 19, 'g0': 27, 'g1': 35})
    """
    body = template[: template.rindex("[A]")].rstrip()
    body = body.replace("[B] and [A]", "[N]", 1).replace("[B]", "[G]", 1)
    pieces: dict[str, Pieces] = {
        "N": [(names[0], "n0"), (", ", None), (names[1], "n1"), (" and ", None), (names[2], "n2")],
        "G": [(givers[0], "g0"), (" and ", None), (givers[1], "g1")],
        "PLACE": [(place, None)], "OBJECT": [(obj, None)]}
    return _splice(body, _THIRD_RE, pieces.__getitem__)


def _draws(n: int, seed: int, split: str, templates: str,
           extra_templates: tuple[str, ...]) -> Iterator[tuple[int, random.Random, str, str, str]]:
    """(index, rng, template, IO, S) for each of ``n`` examples; the rest is drawn from ``rng``."""
    check_choice("ioi", "split", split, SPLITS)
    pool = pick_templates("ioi", TEMPLATES, HELDOUT_TEMPLATES, templates) + list(extra_templates)
    rng = random.Random(seed)
    for i in range(n):
        template = rng.choice(pool)
        io, s = sample_pair(rng, split)
        yield i, rng, template, io, s


def third_name_examples(n: int, seed: int, split: str = "all", templates: str = "all",
                        order: str = "mixed", extra_templates: tuple[str, ...] = ()) -> list[Example]:
    """``n`` examples of the ``third-name`` variant; the counterfactual is three other names.

    ``split`` constrains the pair (A, B) as in the two-name task and, in training, (A, C) too, so
    a held-out pair never occurs in training in either role.
    """
    check_choice("ioi", "order", order, THIRD_NAME_ORDERS)
    out = []
    for i, rng, template, io, b in _draws(n, seed, split, templates, extra_templates):
        while True:
            c = rng.choice([x for x in NAMES if x not in (io, b)])
            if split != "train" or not held_out(*sorted((io, c))):
                break
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        which = THIRD_NAME_ORDERS[1 + i % 3] if order == "mixed" else order
        names = tuple({"A": io, "B": b, "C": c}[k] for k in which)
        givers = tuple(x for x in names if x != io)
        clean, at = fill_third_name_marked(template, names, givers, place, obj)  # type: ignore[arg-type]
        firsts = iter(("B1", "C1"))
        marks = tuple(("IO" if name == io else next(firsts), at[f"n{k}"]) for k, name in enumerate(names))
        x, y, z = rng.sample([x for x in NAMES if x not in (io, b, c)], 3)
        corrupt = fill_third_name(template, (x, y, z), (y, z) if which == "ABC" else
                                  (x, z) if which == "BAC" else (x, y), place, obj)
        out.append(Example(clean, corrupt, io, givers[-1], meta={"order": which},
                           marks=marks + (("B2", at["g0"]), ("C2", at["g1"]))))
    return out


def examples(n: int, seed: int, counterfactual: str = "abc", split: str = "all",
             templates: str = "all", order: str = "mixed",
             extra_templates: tuple[str, ...] = ()) -> list[Example]:
    """``n`` IOI examples as text, deterministic from ``seed``."""
    check_choice("ioi", "counterfactual", counterfactual, COUNTERFACTUALS)
    check_choice("ioi", "order", order, ORDERS)
    out = []
    for i, rng, template, io, s in _draws(n, seed, split, templates, extra_templates):
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        abba = (i % 2 == 0) if order == "mixed" else order == "ABBA"
        first, second = (io, s) if abba else (s, io)
        clean, at = fill_marked(template, first, second, s, place, obj)
        others = [x for x in NAMES if x not in (io, s)]
        if counterfactual == "abc":
            a, b, c = rng.sample(others, 3)
            corrupt = fill(template, a, b, c, place, obj)
        elif counterfactual == "s2":
            corrupt = fill(template, first, second, rng.choice(others), place, obj)
        elif counterfactual == "s2-swap":
            corrupt = fill(template, first, second, io, place, obj)
        else:  # io-swap, s1-swap: that one mention replaced by a third name
            c = rng.choice(others)
            replace_first = (counterfactual == "io-swap") == abba  # IO is the first mention in ABBA
            corrupt = fill(template, c if replace_first else first, second if replace_first else c, s, place, obj)
        io_at, s1_at = (at["first"], at["second"]) if abba else (at["second"], at["first"])
        out.append(Example(clean, corrupt, io, s, meta={"order": "ABBA" if abba else "BABA"},
                           marks=(("IO", io_at), ("S1", s1_at), ("S2", at["s2"]))))
    return out


def build(model: Any, n: int, seed: int, counterfactual: str = "abc", split: str = "all",
          templates: str = "all", order: str = "mixed", variant: str = "two-names") -> TaskDataset:
    """The IOI dataset for ``model``'s tokenizer."""
    check_choice("ioi", "variant", variant, VARIANTS)
    if variant == "third-name":
        if counterfactual != "abc":
            raise TaskError("Task ioi: the third-name variant has only the abc counterfactual; "
                            "drop counterfactual or use variant=two-names.")
        exs = third_name_examples(n, seed, split=split, templates=templates, order=order)
    else:
        exs = examples(n, seed, counterfactual=counterfactual, split=split, templates=templates, order=order)
    spec = {"n": n, "seed": seed, "counterfactual": counterfactual, "split": split,
            "templates": templates, "order": order}
    if variant != "two-names":  # the default stays out of the spec, so existing specs are unchanged
        spec["variant"] = variant
    return assemble("ioi", model, exs, spec, metric_name="logit_diff")


SPEC = TaskSpec(
    slug="ioi",
    description="Indirect object identification (Wang et al. 2022): 'When Mary and John went to "
                "the store, John gave a drink to' -> Mary; 15 templates, ABBA and BABA.",
    metric_name="logit_diff",
    metric_description="logit(indirect object) - logit(subject) at the last position",
    counterfactual="abc: three unrelated names (default); s2: only the second subject mention replaced; "
                   "io-swap / s1-swap: only the indirect object / first subject mention replaced; "
                   "s2-swap: the second subject mention takes the indirect object's name (the answer flips)",
    builder=build,
    options={"counterfactual": "abc (default) | s2 | io-swap | s1-swap | s2-swap",
             "split": "all | train | test (held-out name pairs)",
             "templates": "all | train | heldout",
             "order": "mixed | ABBA | BABA (third-name: mixed | ABC | BAC | BCA)",
             "variant": "two-names (default) | third-name (A, B, C; B and C give: well-posed)"},
)

"""Colored Objects (Merullo et al. 2024, arXiv 2310.08744; from BIG-bench).

One-shot prompts in Merullo et al.'s format::

    Q: On the desk, I see a blue pen, a red mug, and a green ball. What color is the pen?
    A: Blue
    Q: On the table, there is a black cup, an orange bowl, and a purple jug. What color is the bowl?
    A:

-> " Orange". 8 colors, 17 objects, colors distinct within a question. Counterfactual: the same
prompt with only the queried object changed to another object of the question. Metric:
logit(correct color) - logit(the other object's color).

Held-out parts: ``split="test"`` asks only about object combinations (the set of objects in the
question) that never occur in a training question; every object and every (object, color) pair
still occurs in training, so a model cannot pass by memorising which colors an object takes and
cannot fail for lack of having seen a pair. ``templates="heldout"`` uses (surface, opening)
combinations kept out of training.
``n_objects`` (default 3, as published) sets the items per question.

Roles (see `catalog.tasks.roles`), all in the final question: ``QOBJ`` the object the question
asks about, ``OBJ`` and ``COLOR`` that object and its colour in the list, ``ALT_OBJ`` and
``ALT_COLOR`` the item the counterfactual asks about, ``OPT_OBJ`` / ``OPT_COLOR`` (``OPT2_OBJ``...)
the other items, ``END`` the last token; the rest are slots (``QOBJ+1``, ``BOS+12``...).
"""

from __future__ import annotations

import random
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, TaskSpec
from catalog.tasks.examples import (
    SPLITS,
    TEMPLATE_SETS,
    Example,
    assemble,
    check_choice,
    held_out,
)

COLORS = ("black", "blue", "brown", "green", "orange", "purple", "red", "yellow")
OBJECTS = ("ball", "bottle", "bowl", "bracelet", "cup", "envelope", "jug", "leash", "lighter", "mug",
           "necklace", "notebook", "pen", "pencil", "plate", "puzzle", "textbook")
SURFACES = ("table", "desk", "floor")
OPENINGS = ("there is", "you see", "I see")
#: (surface, opening) combinations kept out of the embedded model's training.
HELDOUT_FRAMES = (("floor", "you see"), ("desk", "there is"))


def objects_held_out(objects: list[str] | tuple[str, ...]) -> bool:
    """Whether a question's set of objects belongs to the held-out part."""
    return held_out("colored-objects", *sorted(objects))


def frames(which: str) -> list[tuple[str, str]]:
    """The (surface, opening) combinations a ``templates=`` option selects."""
    check_choice("colored-objects", "templates", which, TEMPLATE_SETS)
    every = [(s, o) for s in SURFACES for o in OPENINGS]
    if which == "heldout":
        return list(HELDOUT_FRAMES)
    if which == "train":
        return [f for f in every if f not in HELDOUT_FRAMES]
    return every


def article(color: str) -> str:
    return "an" if color[0] in "aeiou" else "a"


def question(surface: str, opening: str, items: list[tuple[str, str]], query: str) -> str:
    """``Q: On the {surface}, {opening} {items}. What color is the {query}?\\nA:``"""
    return question_marked(surface, opening, items, query)[0]


def question_marked(surface: str, opening: str, items: list[tuple[str, str]],
                    query: str) -> tuple[str, list[tuple[int, int]], int]:
    """`question`, the character index of each item's (colour, object), and of the queried object.

    >>> question_marked("desk", "I see", [("pen", "red"), ("cup", "blue")], "cup")[1:]
    ([(24, 28), (39, 44)], 67)
    """
    text = f"Q: On the {surface}, {opening} "
    at: list[tuple[int, int]] = []
    for i, (o, c) in enumerate(items):
        if i:
            text += ", and " if i == len(items) - 1 else ", "
        text += f"{article(c)} "
        at.append((len(text), len(text) + len(c) + 1))
        text += f"{c} {o}"
    text += ". What color is the "
    q_at = len(text)
    return text + f"{query}?\nA:", at, q_at


def sample_items(rng: random.Random, k: int, split: str) -> list[tuple[str, str]]:
    """``k`` (object, color) items with distinct objects and colors, whose object set lies in
    ``split`` (train: not held out; test: held out; all: either)."""
    while True:
        objs, cols = rng.sample(OBJECTS, k), rng.sample(COLORS, k)
        if split == "all" or objects_held_out(objs) == (split == "test"):
            return list(zip(objs, cols))


def examples(n: int, seed: int, n_objects: int = 3, split: str = "all", templates: str = "all",
             shots: int = 1, shot_objects: tuple[int, ...] | None = None) -> list[Example]:
    """``n`` Colored Objects examples as text, deterministic from ``seed``."""
    check_choice("colored-objects", "split", split, SPLITS)
    if not 2 <= n_objects <= len(COLORS):
        raise TaskError(f"colored-objects: n_objects must be between 2 and {len(COLORS)}, got {n_objects}.")
    if shots < 0:
        raise TaskError(f"colored-objects: shots must be 0 or more, got {shots}.")
    frame_pool = frames(templates)
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < n:
        prefix = ""
        for _ in range(shots):
            k = rng.choice(shot_objects) if shot_objects else n_objects
            items = sample_items(rng, k, "train" if split == "train" else "all")
            surface, opening = rng.choice(frame_pool)
            o, c = rng.choice(items)
            prefix += question(surface, opening, items, o) + " " + c.title() + "\n"
        items = sample_items(rng, n_objects, split)
        qi = rng.randrange(n_objects)
        surface, opening = rng.choice(frame_pool)
        other = rng.choice([i for i in range(n_objects) if i != qi])
        text, at, q_at = question_marked(surface, opening, items, items[qi][0])
        clean = prefix + text
        corrupt = prefix + question(surface, opening, items, items[other][0])
        out.append(Example(clean, corrupt, items[qi][1].title(), items[other][1].title(),
                           marks=item_marks(len(prefix), at, q_at, qi, other)))
    return out


def item_marks(start: int, at: list[tuple[int, int]], q_at: int, qi: int,
               other: int) -> tuple[tuple[str, int], ...]:
    """Roles of the final question's items and queried object, shifted by the prefix length."""
    marks: list[tuple[str, int]] = []
    n_opt = 0
    for i, (c_at, o_at) in enumerate(at):
        if i == qi:
            name = ""
        elif i == other:
            name = "ALT_"
        else:
            n_opt += 1
            name = "OPT_" if n_opt == 1 else f"OPT{n_opt}_"
        marks += [(f"{name}COLOR", start + c_at), (f"{name}OBJ", start + o_at)]
    return (*marks, ("QOBJ", start + q_at))


def build(model: Any, n: int, seed: int, n_objects: int = 3, split: str = "all",
          templates: str = "all", shots: int = 1) -> TaskDataset:
    """The Colored Objects dataset for ``model``'s tokenizer."""
    exs = examples(n, seed, n_objects=n_objects, split=split, templates=templates, shots=shots)
    spec = {"n": n, "seed": seed, "n_objects": n_objects, "split": split, "templates": templates,
            "shots": shots}
    return assemble("colored-objects", model, exs, spec, metric_name="logit_diff")


SPEC = TaskSpec(
    slug="colored-objects",
    description="Colored Objects (Merullo et al. 2024): one-shot 'Q: On the table, I see a blue "
                "pen, ... What color is the pen?\\nA:' -> Blue; 8 colors, 17 objects, 3 per question.",
    metric_name="logit_diff",
    metric_description="logit(correct color) - logit(color of the object the counterfactual asks about)",
    counterfactual="the same prompt asking about another object of the question",
    builder=build,
    options={"n_objects": "objects per question (default 3)", "shots": "solved examples first (default 1)",
             "split": "all | train | test (held-out object combinations)",
             "templates": "all | train | heldout"},
)

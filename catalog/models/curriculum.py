"""Training data for the embedded default model, drawn from the task generators' training parts.

Only training splits are used: IOI name pairs and Colored Objects (object, color) pairs marked
held-out never appear, nor do the held-out IOI templates and Colored Objects frames. Colored
Objects prompts vary the number of objects (2-4, mostly 3) and solved examples (0-2) so the model
must find the queried object rather than read a fixed position. Each sequence is BOS + prompt + answer;
``targets`` marks the positions whose next token is trained on (answers; the second copy for
induction).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from catalog.tasks import colored_objects as co
from catalog.tasks import greater_than as gt
from catalog.tasks import ioi

# More phrasings for IOI, used only in training, to make the name-mover behaviour less
# template-bound. Slots as in Wang et al.: [B] the subject, [A] the indirect object.
EXTRA_IOI_TEMPLATES = (
    "Later, [B] and [A] went to the [PLACE]. [B] handed a [OBJECT] to [A]",
    "Yesterday, [B] and [A] went to the [PLACE], and [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] met at the [PLACE]. [B] passed a [OBJECT] to [A]",
    "When [B] and [A] arrived at the [PLACE], [B] gave a [OBJECT] to [A]",
    "Today, [B] and [A] walked to the [PLACE]. [B] brought a [OBJECT] to [A]",
    "Once [B] and [A] were at the [PLACE], [B] threw a [OBJECT] to [A]",
    "At the [PLACE], [B] and [A] found a [OBJECT]. [B] gave it to [A]",
    "Then, [B] and [A] went to the [PLACE]. Later, [B] sent a [OBJECT] to [A]",
    "While [B] and [A] were at the [PLACE], [B] said to [A]",
)

Phases = tuple[tuple[int, dict[str, float]], ...]

#: Task mix per phase: (first step of the phase, {task: probability}).
PHASES: Phases = (
    (0, {"colored-objects": 0.5, "induction": 0.5}),
    (1500, {"ioi": 0.15, "colored-objects": 0.55, "greater-than": 0.05, "induction": 0.25}),
)

#: The deeper model's mix. ``lookback`` (see `Curriculum.lookback`) trains the step Colored
#: Objects hinges on, reading the token *before* an earlier copy of the query; IOI includes the
#: third-name variant (``DEEP_THIRD_NAME`` of its prompts) so the rule "the name that is not S2"
#: does not pass.
DEEP_PHASES: Phases = (
    (0, {"colored-objects": 0.35, "induction": 0.3, "lookback": 0.35}),
    (1500, {"ioi": 0.15, "colored-objects": 0.5, "greater-than": 0.05, "induction": 0.15,
            "lookback": 0.15}),
)
DEEP_THIRD_NAME = 0.5

#: The grown deeper model's mix (see `catalog.models.train.grow`): it starts from the default
#: model, which already solves every task, so there is no first phase; IOI is weighted up because
#: the third-name variant is what it has still to learn.
GROWN_PHASES: Phases = (
    (0, {"ioi": 0.35, "colored-objects": 0.4, "greater-than": 0.05, "induction": 0.2}),
)
CURRICULA: dict[str, tuple[Phases, float]] = {
    "default": (PHASES, 0.0), "deep": (DEEP_PHASES, DEEP_THIRD_NAME), "grown": (GROWN_PHASES, DEEP_THIRD_NAME),
}


@dataclass
class Sequence:
    """One training sequence: token ids and the positions whose next token is a target."""

    ids: list[int]
    targets: list[int]


def mix_at(step: int, phases: Phases = PHASES) -> dict[str, float]:
    """The task probabilities in effect at ``step``."""
    current = phases[0][1]
    for start, mix in phases:
        if step >= start:
            current = mix
    return current


class Curriculum:
    """Draws training sequences for one tokenizer, deterministically from a seed."""

    def __init__(self, tokenizer: Any, seed: int, name: str = "default") -> None:
        from catalog.tasks.tokens import Tokens

        self.phases, self.third_name = CURRICULA[name]
        self.tokens = Tokens(tokenizer)
        self.rng = random.Random(seed)
        self.answer_marker = self.tokens.encode("A:")
        self.question_end = self.tokens.encode("?\nA:")
        special = set(tokenizer.all_special_ids)
        self.pool = [i for i in range(len(tokenizer)) if i not in special]

    def _text(self, text: str, answer: str, space: bool = True) -> list[int]:
        return [*self.tokens.prompt(text), self.tokens.word(answer, space=space)]

    def ioi(self) -> Sequence:
        if self.third_name and self.rng.random() < self.third_name:
            ex = ioi.third_name_examples(1, self.rng.randrange(2**31), split="train", templates="train",
                                         order=self.rng.choice(ioi.THIRD_NAME_ORDERS[1:]),
                                         extra_templates=EXTRA_IOI_TEMPLATES)[0]
            ids = self._text(ex.clean, ex.answer)
            return Sequence(ids, [len(ids) - 2])
        ex = ioi.examples(1, self.rng.randrange(2**31), split="train", templates="train",
                          order=self.rng.choice(("ABBA", "BABA")), extra_templates=EXTRA_IOI_TEMPLATES)[0]
        ids = self._text(ex.clean, ex.answer)
        return Sequence(ids, [len(ids) - 2])

    def colored_objects(self) -> Sequence:
        shots = self.rng.choices((0, 1, 2), weights=(0.2, 0.7, 0.1))[0]
        ex = co.examples(1, self.rng.randrange(2**31), n_objects=self.rng.choice((2, 3, 3, 3, 4)),
                         split="train", templates="train", shots=shots, shot_objects=(2, 3, 4))[0]
        ids = self._text(ex.clean, ex.answer)
        m = len(self.answer_marker)
        targets = [i - 1 for i in range(m, len(ids)) if ids[i - m:i] == self.answer_marker]
        return Sequence(ids, targets)

    def greater_than(self) -> Sequence:
        ex = gt.examples(1, self.rng.randrange(2**31), split="train")[0]
        yy = int(ex.meta["yy"])
        ids = self._text(ex.clean, f"{self.rng.randint(yy + 1, 99):02d}", space=False)
        return Sequence(ids, [len(ids) - 2])

    def induction(self) -> Sequence:
        length = self.rng.randint(5, 15)
        body = self.rng.sample(self.pool, length)
        ids = [self.tokens.bos_id, *body, *body]
        return Sequence(ids, list(range(length + 1, 2 * length)))

    def lookback(self) -> Sequence:
        """Random distinct tokens, one of them again, ``?\nA:``, then the token that came *before*
        its first copy: the lookup Colored Objects needs ("a blue pen ... the pen?" -> Blue),
        with nothing else to learn."""
        length = self.rng.randint(4, 14)
        body = self.rng.sample(self.pool, length)
        j = self.rng.randrange(1, length)
        ids = [self.tokens.bos_id, *body, body[j], *self.question_end, body[j - 1]]
        return Sequence(ids, [len(ids) - 2])

    def draw(self, step: int) -> Sequence:
        mix = mix_at(step, self.phases)
        task = self.rng.choices(list(mix), weights=list(mix.values()))[0]
        return {"ioi": self.ioi, "colored-objects": self.colored_objects,
                "greater-than": self.greater_than, "induction": self.induction,
                "lookback": self.lookback}[task]()

    def batches(self, step: int, size: int, pad_id: int, chunks: int = 2) -> list[tuple[Any, Any, Any]]:
        """One step's ``size`` sequences as (input ids, target ids, loss weights) micro-batches.

        Each sequence's targets share a weight of one, so an induction sequence with ten targets
        counts as much as a Colored Objects prompt with one.

        Sequences are sorted by length and cut into ``chunks`` groups, so short induction and
        IOI prompts are not padded to the length of the longest Colored Objects prompt.
        """
        import torch

        seqs = sorted((self.draw(step) for _ in range(size)), key=lambda s: len(s.ids))
        per = -(-size // chunks)
        out = []
        for group in (seqs[i:i + per] for i in range(0, size, per)):
            width = max(len(s.ids) for s in group) - 1
            inputs = torch.full((len(group), width), pad_id, dtype=torch.long)
            labels = torch.zeros((len(group), width), dtype=torch.long)
            weights = torch.zeros((len(group), width))
            for b, s in enumerate(group):
                ids = torch.tensor(s.ids, dtype=torch.long)
                inputs[b, :len(s.ids) - 1] = ids[:-1]
                labels[b, :len(s.ids) - 1] = ids[1:]
                weights[b, s.targets] = 1.0 / len(s.targets)
            out.append((inputs, labels, weights))
        return out

"""The embedded model's word-level tokenizer: every word the built-in tasks use, and no other.

Words, punctuation and newlines are single tokens; digits split in pairs ("1732" -> "17", "32")
as GPT-2 splits years, so greater-than reads the same way. Spaces are dropped, so answers carry
no leading space ("Mary"). Saved with ``save_pretrained`` as a directory: TransformerLens reloads
tokenizers by name, and an in-memory word-level tokenizer breaks that.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: What one token is: a newline, two digits, one digit, a word, or one punctuation mark.
TOKEN_PATTERN = r"\n|\d\d|\d|[A-Za-z]+|[^\sA-Za-z\d]"
SPECIALS = ("<bos>", "<pad>", "<unk>")


def split_words(text: str) -> list[str]:
    """The tokens ``text`` splits into.

    >>> split_words("A: Blue\\nyear 1732.")
    ['A', ':', 'Blue', '\\n', 'year', '17', '32', '.']
    """
    return re.findall(TOKEN_PATTERN, text)


def task_words() -> list[str]:
    """Every token the built-in task generators can produce (sorted, deterministic)."""
    from catalog.models import curriculum
    from catalog.tasks import colored_objects as co
    from catalog.tasks import greater_than as gt
    from catalog.tasks import ioi

    texts: list[str] = []
    texts += [t.replace("[A]", "").replace("[B]", "").replace("[PLACE]", "").replace("[OBJECT]", "")
              for t in (*ioi.TEMPLATES, *curriculum.EXTRA_IOI_TEMPLATES)]
    texts += [*ioi.NAMES, *ioi.PLACES, *ioi.OBJECTS]
    texts += [co.question(s, o, [("ball", "red"), ("cup", "orange")], "cup")
              for s in co.SURFACES for o in co.OPENINGS]
    texts += [*co.COLORS, *(c.title() for c in co.COLORS), *co.OBJECTS]
    texts += [gt.prompt(noun, 17, 32) for noun in gt.NOUNS]
    texts += [f"{i:02d}" for i in range(100)]
    words = {w for t in texts for w in split_words(t)}
    return sorted(words)


def build_tokenizer(words: list[str]) -> Any:
    """A `PreTrainedTokenizerFast` over ``SPECIALS + words`` (ids in that order)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="removed", invert=True)
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                   pad_token="<pad>", unk_token="<unk>")


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save as a directory that `transformers.AutoTokenizer.from_pretrained` reads offline."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))

"""Tokenizer adaptation: turn task text into ids for whichever tokenizer the model uses.

GPT-2-style BPE tokenizers fold the space before a word into its token (" Mary"); the embedded
word-level tokenizer drops spaces ("Mary"). Tasks write plain text and ask this adapter for the
id of "a word after a space"; it checks the word is one token and says why when it is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from catalog.errors import TaskError

if TYPE_CHECKING:
    import torch


def tokenizer_of(model_or_tokenizer: Any) -> Any:
    """The Hugging Face tokenizer of a `LoadedModel` (or the tokenizer itself)."""
    tok = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if tok is None or not callable(getattr(tok, "encode", None)):
        raise TaskError(
            "Tasks need a model with a tokenizer (a LoadedModel from catalog.models.load_model, "
            "or a Hugging Face tokenizer)."
        )
    return tok


class Tokens:
    """Encode task text for one tokenizer: BOS handling, padding and single-token checks."""

    def __init__(self, model_or_tokenizer: Any) -> None:
        self.tok = tokenizer_of(model_or_tokenizer)
        bos = self.tok.bos_token_id
        if bos is None:
            bos = self.tok.eos_token_id
        if bos is None:
            raise TaskError("The tokenizer has no BOS or EOS token to start prompts with.")
        self.bos_id = int(bos)
        pad = self.tok.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.bos_id
        self.name = str(getattr(self.tok, "name_or_path", "") or type(self.tok).__name__)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without any special token."""
        return list(self.tok.encode(text, add_special_tokens=False))

    def word(self, word: str, space: bool = True, what: str = "word") -> int:
        """The single token id of ``word`` as it appears after a space (or glued on, ``space=False``)."""
        text = (" " + word) if space else word
        ids = self.encode(text)
        if len(ids) != 1:
            pieces = [self.tok.decode([i]) for i in ids]
            raise TaskError(
                f"The {what} {text!r} is {len(ids)} tokens {pieces} for tokenizer {self.name}; "
                "tasks need it to be exactly one token. Use a different word list for this model."
            )
        if ids[0] == getattr(self.tok, "unk_token_id", None):
            raise TaskError(f"The {what} {text!r} is not in the vocabulary of tokenizer {self.name}.")
        return int(ids[0])

    def words(self, words: Iterable[str], space: bool = True, what: str = "word") -> dict[str, int]:
        """``{word: id}`` for every word, or one error listing all that are not single tokens."""
        out: dict[str, int] = {}
        bad: list[str] = []
        for w in words:
            try:
                out[w] = self.word(w, space=space, what=what)
            except TaskError:
                bad.append(w)
        if bad:
            raise TaskError(
                f"These {what}s are not single tokens for tokenizer {self.name}: {', '.join(bad)}. "
                "The task needs every one of them as one token after a space."
            )
        return out

    def prompt(self, text: str) -> list[int]:
        """BOS + the ids of ``text``; unknown words are an error rather than silent <unk>s."""
        ids = self.encode(text)
        unk = getattr(self.tok, "unk_token_id", None)
        if unk is not None and unk in ids:
            raise TaskError(f"The prompt {text!r} has words outside the vocabulary of {self.name}.")
        return [self.bos_id, *ids]

    def pad(self, rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
        """Right-pad rows of ids into a LongTensor [N, T]."""
        import torch

        width = max((len(r) for r in rows), default=0) if width is None else width
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(list(r), dtype=torch.long)
        return out

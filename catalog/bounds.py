"""The limits every imported value must respect, checked once at the file boundary.

A file from another tool can hold anything JSON or XML can spell: numbers like ``1e400`` (read as
infinity), integers thousands of digits long, strings with lone UTF-16 surrogates (``"\\ud800"``),
values nested hundreds of levels deep, ids longer than any database column. None of these is a
circuit, and each used to surface later as an internal error (in the database driver, the JSON
encoder or the terminal). Here they become one `FormatError` naming where the value sits.

The string limits mirror the catalog's column widths (``catalog/store/schema.py``), so a value
that passes here is never cut or refused by PostgreSQL:

    >>> MAX_ID, MAX_NAME, MAX_DEPTH
    (200, 300, 32)
    >>> check_json_value({"faithfulness": 0.9, "curve": [[0.1, 0.5]]}, "metrics")
    >>> check_json_value({"f": float("inf")}, "metrics")
    Traceback (most recent call last):
    ...
    catalog.errors.FormatError: metrics.f is inf; only finite numbers are allowed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from catalog.errors import FormatError

MAX_ID = 200  # node ids, edge ends, dictionary names, tags, task and model names (String(200))
MAX_NAME = 300  # a circuit's name (String(300))
MAX_SHORT = 100  # method and source format names (String(100))
MAX_TEXT = 100_000  # free text: annotation values, notes, citations, file names
MAX_STRING = 1_000_000  # any string anywhere in an imported document
MAX_DEPTH = 32  # nesting of any JSON value kept with a circuit (metrics, parameters)
MAX_DOCUMENT_DEPTH = 64  # nesting of a whole imported document
MAX_INT = 2**63 - 1  # integers must fit the database's BIGINT
MAX_INT_DIGITS = 20  # longer integer literals are refused before Python converts them

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str, limit: int) -> str | None:
    """Why `value` cannot be stored as text, or None when it can.

    >>> text_problem("ok", 10), text_problem("x" * 11, 10), text_problem("a\\ud800", 10)
    (None, 'is 11 characters long (at most 10)', 'holds a lone UTF-16 surrogate (U+D800)')
    """
    if len(value) > limit:
        return f"is {len(value)} characters long (at most {limit})"
    bad = _SURROGATE.search(value)
    if bad:
        return f"holds a lone UTF-16 surrogate (U+{ord(bad.group()):04X})"
    if "\x00" in value:
        return "holds a NUL character"
    return None


def _check_text(value: str, limit: int) -> str:
    problem = text_problem(value, limit)
    if problem:
        raise ValueError(f"the text {problem}")
    return value


def text(limit: int) -> Any:
    """A pydantic string type bounded to `limit` characters, valid Unicode, without NUL."""
    return Annotated[str, AfterValidator(lambda v: _check_text(v, limit))]


Id = text(MAX_ID)
Name = text(MAX_NAME)
Short = text(MAX_SHORT)
Text = text(MAX_TEXT)
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
BoundedInt = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]


def _describe(path: list[str | int]) -> str:
    if len(path) > 8:  # a deep path is shown by its ends, to keep the message one short line
        return _describe(path[:3]) + f"...({len(path) - 5} levels)..." + _describe(path[-2:])
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_json_value(value: Any, where: str, max_depth: int = MAX_DEPTH,
                     max_string: int = MAX_STRING) -> None:
    """Raise a `FormatError` unless `value` is plain, bounded JSON: finite floats, integers that
    fit 64 bits, valid bounded strings (keys too), nested at most `max_depth` levels.

    Iterative, so a deep value cannot exhaust the interpreter's stack.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        at = where + _describe(path)
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise FormatError(f"{at} is {item}; only finite numbers are allowed.")
        elif isinstance(item, int):
            if abs(item) > MAX_INT:
                raise FormatError(f"{at} is an integer wider than 64 bits; no circuit value is that large.")
        elif isinstance(item, str):
            problem = text_problem(item, max_string)
            if problem:
                raise FormatError(f"{at} {problem}; fix the file's text.")
        elif isinstance(item, (dict, list, tuple)):
            if len(path) >= max_depth:
                raise FormatError(f"{at} nests deeper than {max_depth} levels; flatten it.")
            if isinstance(item, dict):
                for k, v in item.items():
                    if not isinstance(k, str):
                        raise FormatError(f"{at} has a non-string key {k!r}.")
                    problem = text_problem(k, MAX_ID)
                    if problem:
                        raise FormatError(f"{at} has a key that {problem}.")
                    stack.append((v, [*path, k]))
            else:
                stack.extend((v, [*path, i]) for i, v in enumerate(item))
        else:
            raise FormatError(f"{at} holds a {type(item).__name__}, which is not a JSON value.")


def parse_int(literal: str) -> int:
    """`json.loads`' integer hook: refuse literals too long to be a real value, before Python
    spends time converting them (or raises its own digit-limit error).

    >>> parse_int("42")
    42
    """
    digits = literal.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise _TooLong(literal)
    return int(literal)


class _TooLong(ValueError):
    """An integer literal over `MAX_INT_DIGITS` digits (caught by the JSON parser's caller)."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.digits = len(literal.lstrip("-"))


def refuse_constant(name: str) -> Any:
    """`json.loads`' hook for NaN, Infinity and -Infinity: not JSON, and never a circuit value."""
    raise _NonFinite(name)


class _NonFinite(ValueError):
    """NaN or an infinity spelled as a JSON token."""


DEEP_PLACEHOLDER = "<nested too deeply to show>"


def clip_json(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """A copy of a JSON value with everything nested deeper than `max_depth` replaced by
    `DEEP_PLACEHOLDER`, built without recursion.

    For values read back from a catalog written before these bounds existed: one odd circuit
    then shows a placeholder instead of breaking every listing that serialises it.

    >>> clip_json({"a": [[["x"]]]}, max_depth=2)
    {'a': ['<nested too deeply to show>']}
    """
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        src, dst, depth = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, item in items:
            if isinstance(item, (dict, list)):
                if depth >= max_depth:
                    out: Any = DEEP_PLACEHOLDER
                else:
                    out = {} if isinstance(item, dict) else []
                    stack.append((item, out, depth + 1))
            else:
                out = item
            if isinstance(dst, dict):
                dst[str(key)] = out
            else:
                dst.append(out)
    return root


def load_stored_json(text: str | bytes) -> Any:
    """Decode a JSON column read from the catalog, never failing: a value the decoder cannot
    read (nested past the interpreter's stack, a huge integer) becomes `DEEP_PLACEHOLDER`, and
    the rest is clipped with `clip_json`, so one odd circuit cannot break a listing.

    >>> load_stored_json('{"f": 1e400}')
    {'f': inf}
    >>> load_stored_json("[" * 5000 + "]" * 5000)
    '<nested too deeply to show>'
    """
    try:
        return clip_json(json.loads(text))
    except (RecursionError, ValueError):
        return DEEP_PLACEHOLDER


def dump_stored_json(value: Any) -> str:
    """JSON text for a JSON column, built in pieces of bounded count.

    The C encoder holds one small string per key, value and separator until it has 100,000 (a
    circuit-tracer import's kept node values come to several times their text); here the pieces
    are joined every few thousand, so the peak stays near the size of the text.

    >>> dump_stored_json({"a": [1, 2.5, None]}) == json.dumps({"a": [1, 2.5, None]})
    True
    """
    parts: list[str] = []
    window: list[str] = []
    for chunk in _ENCODER.iterencode(value):
        window.append(chunk)
        if len(window) >= 4096:
            parts.append("".join(window))
            window.clear()
    parts.append("".join(window))
    return "".join(parts)


def check_encodable(value: Any) -> None:
    """Raise `TypeError` or `ValueError` where `value` is not JSON with finite numbers, without
    making its text.

    >>> check_encodable({"a": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: Out of range float values are not JSON compliant: nan
    """
    for _ in _STRICT_ENCODER.iterencode(value):
        pass


_ENCODER = json.JSONEncoder()
_STRICT_ENCODER = json.JSONEncoder(allow_nan=False)


def finite_json(value: Any) -> Any:
    """A copy of a JSON value with NaN and infinities replaced by None (JSON has no token for
    them), built without recursion; for printing values read from a catalog.

    >>> finite_json({"f": float("inf"), "g": [1.5, float("nan")]})
    {'f': None, 'g': [1.5, None]}
    """
    def leaf(x: Any) -> Any:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    if not isinstance(value, (dict, list, tuple)):
        return leaf(value)
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, item in items:
            if isinstance(item, (dict, list, tuple)):
                out: Any = {} if isinstance(item, dict) else []
                stack.append((item, out))
            else:
                out = leaf(item)
            if isinstance(dst, dict):
                dst[key] = out
            else:
                dst.append(out)
    return root


def stored_mapping(value: Any) -> dict[str, Any]:
    """A JSON object column as read back: anything but an object (a value the decoder gave up
    on, or a row from before validation) reads as ``{"unreadable": DEEP_PLACEHOLDER}``.

    >>> stored_mapping({"a": 1}), stored_mapping(None), stored_mapping("x")
    ({'a': 1}, {}, {'unreadable': '<nested too deeply to show>'})
    """
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else {"unreadable": DEEP_PLACEHOLDER}

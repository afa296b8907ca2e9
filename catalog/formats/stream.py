"""Streaming, bounded JSON for import files: records are built one at a time, never the whole tree.

An import file's JSON is read with ijson (yajl's C parser) as a stream of events over the file's
bytes. The top level is read once to detect the format and get its small members (`JsonFile.head`);
the large collections (an EAP-IG graph's edges, a circuit's nodes) are then streamed record by
record (`JsonFile.entries`, `JsonFile.items`, `JsonFile.events`), so memory holds the file's
bytes and the circuit being built, not a parsed document as well.

The limits `loads_bounded` enforces hold here too: duplicate keys are an error, so are NaN and
Infinity tokens, numbers too large to be finite (``1e400``), integers over 64 bits, lone UTF-16
surrogates, strings over `MAX_STRING` characters, keys over `MAX_ID`, nesting over
`MAX_DOCUMENT_DEPTH` levels, and anything after the document.

    >>> from pathlib import Path
    >>> from catalog.formats.files import RawFile
    >>> raw = RawFile(Path("x.json"), b'{"cfg": {"n": 1}, "edges": {"a": 1, "b": 2}}', "", False)
    >>> f = JsonFile(raw)
    >>> f.head(streamed={"edges"})
    {'cfg': {'n': 1}, 'edges': <object>}
    >>> list(f.entries("edges"))
    [('a', 1), ('b', 2)]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

import ijson

from catalog.bounds import MAX_DOCUMENT_DEPTH, MAX_ID, MAX_INT, MAX_INT_DIGITS, MAX_STRING, text_problem
from catalog.errors import FormatError
from catalog.formats.files import RawFile

__all__ = ["ARRAY", "OBJECT", "Events", "JsonFile"]

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16


class _Marker:
    """Stands for a streamed member in `JsonFile.head`: an object or an array, not built."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


OBJECT = _Marker("object")
ARRAY = _Marker("array")


class _Bad(Exception):
    """A value out of bounds; `path` is filled in on the way up, for the message."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str | int] = []


class _Chunks:
    """A read-only file over `data` from `start`, handing out copies of one chunk at a time."""

    def __init__(self, data: bytes, start: int) -> None:
        self._view = memoryview(data)
        self._pos = start

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        chunk = self._view[self._pos:end].tobytes()
        self._pos += len(chunk)
        if not chunk and size != 0:  # (ijson first reads 0 bytes to see what the file gives)
            self._view = memoryview(b"")  # at the end: stop holding the file (it may be released)
        return chunk


# A JSON string escape: a surrogate pair, a lone surrogate, or any other escape (skipped whole, so
# an escaped backslash never makes the next character look escaped).
_ESCAPE = re.compile(rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u([dD][89a-fA-F][0-9a-fA-F]{2})|.)",
                     re.S)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# JSON strings and numbers, to find the number the parser refused (only on that error path).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def _describe(path: list[str | int]) -> str:
    if len(path) > 8:
        return _describe(path[:3]) + f"...({len(path) - 5} levels)..." + _describe(path[-2:])
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


#: Strings up to this length are shared within a pass (see `Events`).
_SHARED_LENGTH = 32


class Events:
    """One pass over the file's JSON events (``(event, value)`` pairs, as ijson's basic_parse
    gives them), with the bounded building and skipping of values.

    The parser's errors are turned into `FormatError` where a method is entered, not per event:
    a wrapping generator would cost as much as the parse itself."""

    def __init__(self, source: JsonFile) -> None:
        self._file = source
        data = source.raw.data
        start = len(_BOM) if data.startswith(_BOM) else 0
        self._it: Iterator[tuple[str, Any]] = ijson.basic_parse(_Chunks(data, start), buf_size=_CHUNK,
                                                                use_float=True)
        # One object per distinct key and short string of the pass: the parser makes a new one
        # for every occurrence, and records of a file repeat the same keys and kinds thousands of
        # times (a circuit-tracer node's nine keys and its feature type: ~0.3x the file's size).
        self._shared: dict[str, str] = {}

    def finish(self) -> None:
        """Read the rest of the pass, which makes the parser check that nothing follows the document."""
        try:
            for _ in self._it:
                pass
        except ijson.JSONError as exc:
            raise self._file.parse_error(exc) from None
        self._it = iter(())  # the parser and its reader go: nothing holds the file's bytes

    def next(self) -> tuple[str, Any]:
        """The next event; the end of the file here means the document was cut short."""
        try:
            return next(self._it)
        except StopIteration:
            raise FormatError(f"{self._file.where} is not valid JSON (it ends early); the file may be "
                              "truncated. Export it again.") from None
        except ijson.JSONError as exc:
            raise self._file.parse_error(exc) from None

    def value(self, depth: int, first: tuple[str, Any] | None = None, at: tuple[str | int, ...] = ()) -> Any:
        """Build the next value (or the one `first` starts), `depth` levels below the top; `at`
        is where it sits, for messages."""
        event, value = first or self.next()
        try:
            return self._build(event, value, depth)
        except _Bad as bad:
            bad.path[:0] = at
            raise self._file.bad(bad) from None
        except ijson.JSONError as exc:
            raise self._file.parse_error(exc) from None

    def skip(self, depth: int, first: tuple[str, Any] | None = None) -> None:
        """Consume the next value without building it (its nesting is still bounded)."""
        event, _ = first or self.next()
        if event not in ("start_map", "start_array"):
            return
        level = depth + 1
        try:
            for event, _ in self._it:
                if event in ("start_map", "start_array"):
                    level += 1
                    if level > MAX_DOCUMENT_DEPTH:
                        raise self._file.too_deep()
                elif event in ("end_map", "end_array"):
                    level -= 1
                    if level == depth:
                        return
        except ijson.JSONError as exc:
            raise self._file.parse_error(exc) from None

    def keys(self) -> Iterator[str]:
        """The keys of the object just opened (its ``start_map`` was consumed), each checked and
        unique; the caller consumes each key's value (`value`, `skip`, ...) before the next."""
        seen: set[str] = set()
        while True:
            event, key = self.next()
            if event == "end_map":
                return
            self._key(key, seen)
            yield key

    def _key(self, key: str, seen: set[str] | None) -> None:
        if len(key) > MAX_ID or "\x00" in key:
            raise FormatError(f"{self._file.where} has a key that {text_problem(key, MAX_ID)}.")
        if seen is not None:
            if key in seen:
                raise self._file.duplicate(key)
            seen.add(key)

    def entries(self, depth: int, unique: bool = True) -> Iterator[tuple[str, Any]]:
        """(key, value) of the object just opened, each value built; `unique=False` leaves
        duplicate keys to the caller (which finds them cheaper than a set of every key)."""
        seen: set[str] | None = set() if unique else None
        while True:
            event, key = self.next()
            if event == "end_map":
                return
            self._key(key, seen)
            try:
                item = self._build(*next(self._it), depth + 1)
            except _Bad as bad:
                bad.path.insert(0, key)
                raise self._file.bad(bad) from None
            except ijson.JSONError as exc:
                raise self._file.parse_error(exc) from None
            yield key, item

    def items(self, depth: int) -> Iterator[Any]:
        """The values of the array just opened (its ``start_array`` was consumed), each built."""
        i = 0
        while True:
            event, value = self.next()
            if event == "end_array":
                return
            try:
                item = self._build(event, value, depth + 1)
            except _Bad as bad:
                bad.path.insert(0, i)
                raise self._file.bad(bad) from None
            except ijson.JSONError as exc:
                raise self._file.parse_error(exc) from None
            yield item
            i += 1

    def _build(self, event: str, value: Any, depth: int) -> Any:
        if event == "start_map":
            if depth >= MAX_DOCUMENT_DEPTH:
                raise self._file.too_deep()
            out: dict[str, Any] = {}
            for event, key in self._it:
                if event == "end_map":
                    return out
                key = self._shared.setdefault(key, key)
                if key in out:
                    raise self._file.duplicate(key)
                if len(key) > MAX_ID or "\x00" in key:
                    raise _Bad(f"has a key that {text_problem(key, MAX_ID)}")
                try:
                    out[key] = self._build(*next(self._it), depth + 1)
                except _Bad as bad:
                    bad.path.insert(0, key)
                    raise
            raise FormatError(f"{self._file.where} is not valid JSON (it ends early).")
        if event == "start_array":
            if depth >= MAX_DOCUMENT_DEPTH:
                raise self._file.too_deep()
            items: list[Any] = []
            for event, value in self._it:
                if event == "end_array":
                    return items
                try:
                    items.append(self._build(event, value, depth + 1))
                except _Bad as bad:
                    bad.path.insert(0, len(items))
                    raise
            raise FormatError(f"{self._file.where} is not valid JSON (it ends early).")
        if event == "string":
            if len(value) > MAX_STRING or "\x00" in value:
                raise _Bad(str(text_problem(value, MAX_STRING)))
            if len(value) <= _SHARED_LENGTH:
                value = self._shared.setdefault(value, value)
        elif event == "number" and value.__class__ is int and value < -MAX_INT:
            raise _Bad("is an integer wider than 64 bits; no circuit value is that large")
        return value


class JsonFile:
    """An import file's JSON, read as a stream: a head pass, then streamed members."""

    def __init__(self, raw: RawFile) -> None:
        self.raw = raw
        self.where = raw.display_name
        self.top: Any = None  # what `head` read
        self._check_escapes()

    def _check_escapes(self) -> None:
        """Refuse lone surrogate escapes (``"\\ud800"``), which the parser would turn into '?'."""
        data = self.raw.data
        if _SURROGATE_ESCAPE.search(data) is None:
            return
        for m in _ESCAPE.finditer(data):
            if m.group(1) is not None:
                raise FormatError(f"{self.where} holds a lone UTF-16 surrogate (U+{m.group(1).decode().upper()}) "
                                  f"at byte {m.start()}; fix the file's text.")

    def events(self) -> Events:
        """A fresh pass over the whole document."""
        return Events(self)

    def head(self, streamed: Collection[str] = ()) -> Any:
        """The top-level value, built (and kept as `top`); when it is an object, the members named
        in `streamed` that hold an object or an array are not built but stand as `OBJECT` or `ARRAY`."""
        ev = self.events()
        first = ev.next()
        if first[0] != "start_map":
            out = ev.value(0, first)
        else:
            out = {}
            for key in ev.keys():
                start = ev.next()
                if key in streamed and start[0] in ("start_map", "start_array"):
                    ev.skip(1, start)
                    out[key] = OBJECT if start[0] == "start_map" else ARRAY
                else:
                    out[key] = ev.value(1, start, at=(key,))
        ev.finish()
        self.top = out
        return out

    def member(self, key: str) -> Events:
        """A pass positioned at the value of the top-level member `key` (its first event next)."""
        ev = self.events()
        ev.next()  # start_map: `head` has checked the top level is an object
        for name in ev.keys():
            if name == key:
                return ev
            ev.skip(1)
        raise FormatError(f"{self.where} has no '{key}' member.")

    def entries(self, key: str, unique: bool = True) -> Iterator[tuple[str, Any]]:
        """Stream (name, value) of the top-level member `key`, an object (`head` said `OBJECT`)."""
        ev = self.member(key)
        ev.next()  # start_map
        return ev.entries(1, unique=unique)

    def items(self, key: str) -> Iterator[Any]:
        """Stream the values of the top-level member `key`, an array (`head` said `ARRAY`)."""
        ev = self.member(key)
        ev.next()  # start_array
        return ev.items(1)

    def count(self, key: str) -> int:
        """How many values the top-level array member `key` holds (a pass that builds none)."""
        ev = self.member(key)
        ev.next()  # start_array
        n = 0
        while (first := ev.next())[0] != "end_array":
            ev.skip(2, first)
            n += 1
        return n

    # --- errors ---------------------------------------------------------------------------------

    def bad(self, bad: _Bad) -> FormatError:
        return FormatError(f"{self.where}{_describe(bad.path)} {bad.problem}; fix the file.")

    def too_deep(self) -> FormatError:
        return FormatError(f"{self.where} nests too deeply to be a circuit file (over {MAX_DOCUMENT_DEPTH} levels).")

    def duplicate(self, key: str) -> FormatError:
        return FormatError(f"{self.where}: the key '{key[:80]}' appears twice in one object; "
                           "remove the duplicate (e.g. an edge listed twice).")

    def parse_error(self, exc: Exception) -> FormatError:
        """One line for what the parser refused, naming the number it could not hold."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(first, bytes):
            first = first.decode("utf-8", "replace")
        first = first.removeprefix("b'").removeprefix('b"')
        if "floating point) overflow" in first:
            return FormatError(f"{self.where} holds a number too large to be finite (like 1e400), which is not "
                               "JSON's range; only finite numbers are allowed.")
        if "integer overflow" in first:
            digits = self._widest_integer()
            if digits > MAX_INT_DIGITS:
                return FormatError(f"{self.where} holds an integer {digits} digits long (at most {MAX_INT_DIGITS}); "
                                   "no circuit value is that large. The file is corrupt.")
            return FormatError(f"{self.where} holds an integer wider than 64 bits; no circuit value is that large.")
        if "invalid char in json text" in first and re.search(rb"\b(NaN|-?Infinity)\b", self.raw.data):
            return FormatError(f"{self.where} holds NaN or Infinity, which is not JSON; only finite numbers "
                               "are allowed.")
        return FormatError(f"{self.where} is not valid JSON ({first[:120]}); the file may be truncated. "
                           "Export it again.")

    def _widest_integer(self) -> int:
        """Digits of the first integer literal outside strings that does not fit 64 bits."""
        for m in _TOKEN.finditer(self.raw.data):
            digits = m.group().lstrip(b"-")
            if digits.isdigit() and int(digits[:MAX_INT_DIGITS + 2]) > MAX_INT:
                return len(digits)
        return 0

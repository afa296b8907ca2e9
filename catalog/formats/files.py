"""Reading an import file safely: size limit, gzip, refusal of pickles and binaries, strict JSON.

Everything here works on bytes and names, never on the circuit formats themselves, so every
importer gets the same guarantees: a file is read at most once, never unpickled, a gzip bomb
stops at the size limit, and bad bytes become a `FormatError` that says what to do.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import FormatError, InvalidInputError

MAX_IMPORT_MB_ENV = "CATALOG_MAX_IMPORT_MB"
DEFAULT_MAX_IMPORT_MB = 512.0

# Task slugs recognised in file names and slugs (``ioi_gpt2/importances.json``,
# ``greater-than_manual.json``): the catalog's own tasks and MIB's.
KNOWN_TASK_SLUGS: tuple[str, ...] = (
    "ioi", "greater-than", "colored-objects", "induction", "docstring", "mcqa",
    "arithmetic-addition", "arithmetic-subtraction", "arc-easy", "arc-challenge",
)

_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".npy", ".npz"}
_PT_ADVICE = (
    "circuit-catalog never unpickles files (loading a pickle can run arbitrary code). "
    "Convert it to JSON with the tool that wrote it, then import the JSON: for an EAP-IG graph, "
    "`Graph.from_pt('graph.pt').to_json('graph.json')`; for circuit-tracer, "
    "`create_graph_files(...)` writes the attribution-graph JSON."
)


@dataclass
class RawFile:
    """An import file's bytes (gunzipped, checked to be UTF-8), with what provenance needs to know.

    The bytes are kept as they are, not decoded into a string: readers stream-parse them, so the
    file is held in memory once, and `release` them after their last pass, before they build the
    circuit, so the file and the circuit are not held at once."""

    path: Path
    data: bytes
    sha256: str
    gzipped: bool

    def release(self) -> None:
        """Let the file's bytes go (every pass over them is done); name and hash stay."""
        self.data = b""

    def first_char(self) -> bytes:
        r"""The first byte that is not whitespace or a byte-order mark (b"" for none).

        >>> RawFile(Path("x"), b"\xef\xbb\xbf  <graphml/>", "", False).first_char()
        b'<'
        """
        m = _FIRST.match(self.data)
        return m.group(1) if m else b""

    @property
    def display_name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        """The file name without ``.gz`` and the format extension."""
        name = self.path.name
        if name.lower().endswith(".gz"):
            name = name[:-3]
        return name.rsplit(".", 1)[0] if "." in name else name


def max_import_bytes() -> int:
    """The largest file (after decompression) an import accepts, from `$CATALOG_MAX_IMPORT_MB`."""
    raw = os.environ.get(MAX_IMPORT_MB_ENV)
    if raw is None or not raw.strip():
        return int(DEFAULT_MAX_IMPORT_MB * 1024 * 1024)
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not math.isfinite(mb) or mb <= 0:
        raise InvalidInputError(
            f"{MAX_IMPORT_MB_ENV}={raw!r} is not a positive number of megabytes; set it to e.g. 512."
        )
    return int(mb * 1024 * 1024)


def _too_large(path: Path, limit: int, what: str) -> FormatError:
    return FormatError(
        f"{path.name} is larger than the import limit ({what} over {limit / 1024 / 1024:.3g} MB). "
        f"Raise the limit with {MAX_IMPORT_MB_ENV}=<megabytes> if the file is genuine."
    )


def _open_regular(p: Path) -> int:
    """Open `p` for reading only if it is a regular file, without ever blocking.

    O_NONBLOCK keeps a FIFO with no writer from hanging the open; the type is checked on the
    opened descriptor (fstat), so a path swapped for a FIFO or device after a check is refused too.
    """
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidInputError(f"{p} does not exist; check the path.") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{p} is a folder; give the path of one circuit file.") from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{p} is a folder; give the path of one circuit file.")
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise InvalidInputError(f"{p} is {kind}; import reads regular files only. Save the circuit to a file first.")


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` + 1 bytes from `fd`, in chunks: memory grows with the data, not the limit."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_bytes(path: str | os.PathLike[str]) -> tuple[Path, bytes, bytes, bool]:
    """Read a regular file within the size limit; return (path, raw bytes, decompressed bytes, gzipped)."""
    p = Path(path)
    if not str(path).strip():
        raise InvalidInputError("No file given; pass the path of a circuit file.")
    limit = max_import_bytes()
    fd = _open_regular(p)
    try:
        if os.fstat(fd).st_size > limit:
            raise _too_large(p, limit, "file size")
        # Clear O_NONBLOCK again so reads of a slow (network) file wait instead of failing.
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        raw = _read_at_most(fd, limit)
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise _too_large(p, limit, "file size")
    if raw[:2] != b"\x1f\x8b":
        if p.name.lower().endswith(".gz"):
            raise FormatError(f"{p.name} ends in .gz but is not gzip data; rename it or recompress it with gzip.")
        return p, raw, raw, False
    try:
        # Decompress in bounded steps so a gzip bomb stops at the limit; pieces are joined once.
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pieces: list[bytes] = []
        total = 0
        data = raw
        while data:
            piece = d.decompress(data, min(1 << 22, limit + 1 - total))
            pieces.append(piece)
            total += len(piece)
            if total > limit:
                raise _too_large(p, limit, "decompressed size")
            data = d.unconsumed_tail
            if d.eof and d.unused_data:
                # Concatenated gzip members: let gzip handle them within the same limit.
                pieces = [_gunzip_members(raw, limit, p)]
                break
        else:
            pieces.append(d.flush())
        out = b"".join(pieces)
        if len(out) > limit:
            raise _too_large(p, limit, "decompressed size")
        if not d.eof:
            raise FormatError(f"{p.name} is a truncated or corrupt gzip file; recompress it with gzip.")
    except (zlib.error, gzip.BadGzipFile, EOFError):
        raise FormatError(f"{p.name} is a corrupt gzip file; recompress it with gzip.") from None
    return p, raw, out, True


def _gunzip_members(raw: bytes, limit: int, p: Path) -> bytes:
    import io

    chunks: list[bytes] = []
    total = 0
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
        while total <= limit:
            chunk = fh.read(min(1 << 20, limit + 1 - total))  # bounded reads: no preallocation
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > limit:
        raise _too_large(p, limit, "decompressed size")
    return b"".join(chunks)


def refuse_binary(p: Path, data: bytes) -> None:
    """Raise a `FormatError` for pickles, torch files, zip archives and other binary data."""
    name = p.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    is_pickle = data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    is_zip = data[:4] == b"PK\x03\x04"
    if suffix in _PICKLE_SUFFIXES or is_pickle or (is_zip and b"data.pkl" in data[:4096]):
        kind = "a PyTorch file" if suffix in (".pt", ".pth", ".ckpt") or is_zip else "a pickle"
        raise FormatError(f"{p.name} is {kind}. {_PT_ADVICE}")
    if is_zip:
        raise FormatError(f"{p.name} is a zip archive; unpack it and import the JSON or GraphML file inside.")
    if not data.strip():
        raise FormatError(f"{p.name} is empty; export the circuit again.")
    if b"\x00" in data[:8192]:
        raise FormatError(
            f"{p.name} is binary data, not a circuit file. Import JSON (catalog, EAP-IG, "
            "circuit-tracer) or GraphML written by circuit-catalog."
        )


_FIRST = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*(.)", re.S)
_UTF8_STEP = 1 << 20


def read_file(path: str | os.PathLike[str]) -> RawFile:
    """Read, gunzip and size-check an import file, refusing pickles, binaries and bytes that are
    not UTF-8 (checked a megabyte at a time, so no decoded copy of the file is ever made)."""
    p, raw, data, gzipped = read_bytes(path)
    refuse_binary(p, data)
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _UTF8_STEP):
        try:
            decoder.decode(view[start:start + _UTF8_STEP], final=start + _UTF8_STEP >= len(data))
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"{p.name} is not UTF-8 text (bad byte at offset {start + exc.start}); circuit files are "
                "UTF-8 JSON or GraphML. Re-save it as UTF-8."
            ) from None
    return RawFile(path=p, data=data, sha256=hashlib.sha256(raw).hexdigest(), gzipped=gzipped)


class _DuplicateKey(Exception):
    pass


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def loads_bounded(text: str, where: str, max_depth: int | None = None) -> Any:
    """Parse JSON text strictly and within bounds: duplicate keys are an error (they would silently
    drop an edge); so are NaN/Infinity tokens, integers over 20 digits, and anything `bounds`
    refuses (non-finite floats such as ``1e400``, lone surrogates, nesting over 64 levels)."""
    from catalog.bounds import (
        MAX_DOCUMENT_DEPTH,
        MAX_INT_DIGITS,
        _NonFinite,
        _TooLong,
        check_json_value,
        parse_int,
        refuse_constant,
    )

    try:
        doc = json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_int=parse_int,
                         parse_constant=refuse_constant)
    except _DuplicateKey as exc:
        raise FormatError(
            f"{where}: the key '{exc.args[0]}' appears twice in one object; "
            "remove the duplicate (e.g. an edge listed twice)."
        ) from None
    except _TooLong as exc:
        raise FormatError(
            f"{where} holds an integer {exc.digits} digits long (at most "
            f"{MAX_INT_DIGITS}); no circuit value is that large. The file is corrupt."
        ) from None
    except _NonFinite as exc:
        raise FormatError(
            f"{where} holds {exc.args[0]}, which is not JSON; only finite numbers are allowed."
        ) from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}); the file may be truncated. Export it again."
        ) from None
    except RecursionError:
        raise FormatError(f"{where} nests too deeply to be a circuit file.") from None
    except ValueError as exc:  # anything else the decoder refuses (e.g. an out-of-range number)
        raise FormatError(f"{where} is not valid JSON ({exc}).") from None
    check_json_value(doc, where, max_depth=max_depth or MAX_DOCUMENT_DEPTH)
    return doc


def infer_task(names: Iterable[str | None]) -> str | None:
    """The one known task slug that appears as a word in any of `names`, else None.

    Words are split on ``_``, ``.``, ``/``, spaces; hyphenated runs are matched whole.

    >>> infer_task(["eap-ig-legacy_greater-than_gpt2-small_manual.json.gz"])
    'greater-than'
    >>> infer_task(["ioi-eap-ig.json"]), infer_task(["dallas-austin"])
    ('ioi', None)
    """
    found: list[str] = []
    for name in names:
        if not name:
            continue
        for word in re.split(r"[_./\\\s]+", name.lower()):
            parts = [x for x in word.split("-") if x]
            for i in range(len(parts)):
                for j in range(i + 1, len(parts) + 1):
                    cand = "-".join(parts[i:j])
                    if cand in KNOWN_TASK_SLUGS and cand not in found:
                        found.append(cand)
    # A longer slug containing a shorter one (none today) would win; several distinct ones do not.
    return found[0] if len(found) == 1 else None


def need_task(raw: RawFile, hints: Iterable[str | None]) -> str:
    """Infer the task from names, or raise an error that says to pass --task."""
    task = infer_task(hints)
    if task is None:
        raise InvalidInputError(
            f"Cannot tell which task {raw.display_name} is for; pass --task (e.g. --task ioi). "
            f"Task names recognised in file names: {', '.join(KNOWN_TASK_SLUGS)}."
        )
    return task


def check_finite_json(value: Any, where: str) -> None:
    """Raise a `FormatError` if a JSON value holds NaN or an infinity anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        raise FormatError(f"{where} holds {value}; only finite numbers are allowed.")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite_json(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite_json(v, f"{where}[{i}]")

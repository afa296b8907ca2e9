"""What every command shares: the error table, opening the catalog, JSON and table output.

Errors are mapped to messages and exit codes in ONE place (`ERRORS`): a `CatalogError` becomes
one line ``error: ...`` on stderr and exit code 1, Ctrl-C exits 130, and anything unexpected
says how to get the traceback (``--debug``). Database URLs never show their password.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from catalog.errors import CatalogError, redact

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.table import Table

    from catalog.store import Catalog


# Characters that would act on a terminal instead of being shown: C0 controls but the newline,
# DEL and C1 (ESC starts ANSI and OSC sequences; CSI is U+009B), and Unicode's line separators
# and bidirectional marks, overrides and isolates (they reorder what follows on the line).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    r"""`text` with every character that could steer a terminal written as a visible escape.

    All human-readable output goes through this (the consoles below apply it to every string
    they render, table cells included), so names, labels and tags from files cannot repaint,
    retitle or reorder the user's terminal.

    >>> print(safe_text("name\x1b[31m red \u202eevil\x07"))
    name\x1b[31m red \u202eevil\x07
    """
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


class _PlainConsole(Console):
    """A plain console (ids like ``f3.12[clt]`` are not markup) that is wide whenever its output
    is not a terminal, decided at each print, so tables in files and pipes are never truncated.
    Every string it renders passes through `safe_text` first."""

    def render_str(self, text: str, *args: Any, **kwargs: Any) -> Any:
        return super().render_str(safe_text(text), *args, **kwargs)

    @property  # type: ignore[override]
    def size(self) -> Any:
        dims = super().size
        isatty = getattr(self.file, "isatty", None)
        piped = not (isatty() if callable(isatty) else False) and "COLUMNS" not in os.environ
        return dims._replace(width=200) if piped else dims


def _console(stderr: bool = False) -> Console:
    return _PlainConsole(stderr=stderr, highlight=False, markup=False, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not bad input
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away

# The CLI framework's own control-flow exceptions pass through untouched. Found via typer's
# public classes so this works whether typer bundles click or depends on it.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_PASS_THROUGH: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, _CLICK_EXCEPTION)

def _interrupted(e: BaseException) -> str:
    reason = getattr(e, "reason", None)  # catalog.signals.Terminated names its signal
    return f"{reason or 'interrupted'}; the transaction in progress, if any, was rolled back."


def _os_message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}. Check the path and its permissions."
    return f"{e}. Check the path and its permissions."


# The one error table: first matching class wins.
ERRORS: tuple[tuple[type[BaseException], int, Callable[[BaseException], str]], ...] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED, _interrupted),  # SIGTERM 143, SIGHUP 129: see exit_code
    (BrokenPipeError, EXIT_BROKEN_PIPE, lambda e: ""),  # `catalog ... | head`: stop quietly
    (CatalogError, 1, str),
    (OSError, 1, _os_message),
    (Exception, EXIT_INTERNAL,
     lambda e: f"unexpected {type(e).__name__}: {e}. Rerun with --debug for the traceback and "
               "report it."),
)


def map_error(e: BaseException) -> tuple[str, int]:
    """The message (password-free) and exit code for an exception, from `ERRORS`."""
    for cls, code, message in ERRORS:
        if isinstance(e, cls):
            exit_code = getattr(e, "exit_code", code) if isinstance(e, (CatalogError, KeyboardInterrupt)) else code
            return " ".join(redact(message(e)).split()), int(exit_code)  # always one line
    raise e


@dataclasses.dataclass
class State:
    """Global options, stored on the root context."""

    db: str | None = None
    debug: bool = False


class CatalogGroup(TyperGroup):
    """The root command group: runs a subcommand and maps its errors through `ERRORS`, and
    names every value in help by a readable placeholder (`readable_placeholders`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        readable_placeholders(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except (Exception, KeyboardInterrupt) as e:
            state = ctx.obj if isinstance(ctx.obj, State) else State()
            message, code = map_error(e)
            if state.debug:  # the traceback, with every password hidden as in one-line errors
                import traceback

                sys.stderr.write(redact("".join(traceback.format_exception(e))))
                raise typer.Exit(code) from None
            if isinstance(e, BrokenPipeError):
                _silence_stdout()
            else:
                err_console.print(f"error: {message or type(e).__name__}", markup=False)
            raise typer.Exit(code) from None


def _placeholder(param: Any) -> str:
    """A value's name in help: its metavar, else its longest option name or its name, upper-cased.

    >>> from types import SimpleNamespace as P
    >>> _placeholder(P(metavar=None, opts=["-s", "--seed"], name="seed")), _placeholder(P(metavar=None, name="ref"))
    ('SEED', 'REF')
    """
    if param.metavar:
        return str(param.metavar)
    names = [o.lstrip("-") for o in getattr(param, "opts", ()) if o.startswith("--")]
    return (max(names, key=len) if names else str(param.name)).replace("-", "_").upper()


def readable_placeholders(command: Any) -> None:
    """Name every argument and option value by its placeholder (``REF``, ``MODEL``), never by a
    type hint (``<str>``) or braces (``{REF}``), which typer writes by default, in `command` and
    all its sub-commands."""
    from typer.core import TyperArgument, TyperOption  # typer bundles its own click

    for param in getattr(command, "params", ()):
        if isinstance(param, TyperArgument):
            name = _placeholder(param)
            usage = (name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else "")
            param.display_type_rich = lambda ctx: None  # help lists the name alone
            param._usage_display_name = lambda usage=usage: usage
        elif isinstance(param, TyperOption) and not param.is_flag and not param.count:
            param.metavar = _placeholder(param)
    for sub in getattr(command, "commands", {}).values():
        readable_placeholders(sub)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under a test runner)
        pass


def state(ctx: typer.Context) -> State:
    """The global options of the running command."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def open_catalog(ctx: typer.Context, create: bool = False) -> Catalog:
    """Open the catalog named by ``--db`` / ``$CATALOG_DB`` / the default path. Commands that
    write pass `create` so a new catalog is made; read commands on a missing file say so."""
    from catalog.store import Catalog

    return Catalog.open(state(ctx).db, create=create)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def print_json(obj: BaseModel | Sequence[BaseModel]) -> None:
    """Print a library model (or a list of them) as indented JSON on stdout, for ``--json``.

    Only the library's pydantic models are printed, so ``--json``, the Python API and any other
    interface give the same shape: ``model_dump(mode="json")``.
    """
    from catalog.bounds import finite_json

    data = ([m.model_dump(mode="json") for m in obj] if isinstance(obj, Sequence)
            else obj.model_dump(mode="json"))
    # JSON has no NaN or Infinity: a value stored before the catalog refused them prints as null.
    sys.stdout.write(json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n")


def fmt_score(value: float | None, digits: int = 3) -> str:
    """A score for a table cell.

    >>> fmt_score(0.123456), fmt_score(None)
    ('0.123', '-')
    """
    return "-" if value is None else f"{value:.{digits}g}"


def table(*columns: str, **options: Any) -> Table:
    """A borderless rich table (imported on first use: start-up stays fast)."""
    from rich.table import Table

    return Table(*columns, **({"box": None, "pad_edge": False} | options))

"""One exception hierarchy for circuit-catalog.

Every error raised on bad input or a failed operation derives from `CatalogError` and carries a
message that says what to do next. The CLI maps these classes to one line on stderr and exit
code 1 (see `cli/errors.py`); tracebacks appear only with `--debug`.
"""

from __future__ import annotations

import re


class CatalogError(Exception):
    """Base class: a problem the user can act on. The message says how."""

    exit_code: int = 1


class InvalidInputError(CatalogError, ValueError):
    """A value given by the user (id, option, argument) is malformed."""


class InvalidGraphError(InvalidInputError):
    """A circuit graph breaks an invariant: unknown node, out-of-range layer, bad score, ..."""


class FormatError(InvalidInputError):
    """A file cannot be read as the circuit format it claims to be (or was forced to be)."""


class UnknownKeyError(InvalidInputError, KeyError):
    """A registry lookup (task, method, format, ...) named something that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFoundError(CatalogError, LookupError):
    """A circuit, model or task asked for is not in the catalog."""


class AmbiguousReferenceError(CatalogError):
    """A reference (e.g. a task name) matches several circuits; the message lists them."""


class AlreadyExistsError(CatalogError):
    """A unique record already exists in the store."""


class StoreUnavailableError(CatalogError):
    """The database cannot be reached or opened."""


class SchemaOutOfDateError(CatalogError):
    """The database schema is behind the code; run `catalog db upgrade`."""


class ModelLoadError(CatalogError):
    """A model could not be loaded (not cached, no network, bad folder, ...)."""


class TaskError(InvalidInputError):
    """A task dataset cannot be built for this model or from this file."""


class DiscoveryError(CatalogError):
    """A discovery job failed; the run is recorded as failed and no circuit is stored."""


def suggest(key: str, known: list[str] | tuple[str, ...], what: str) -> UnknownKeyError:
    """Build an `UnknownKeyError` listing the known keys and the nearest match.

    >>> str(suggest("ioj", ["ioi", "induction"], "task"))
    "Unknown task 'ioj'. Did you mean 'ioi'? Known: induction, ioi."
    """
    import difflib

    by_lower = {k.lower(): k for k in known}  # case does not count when looking for the nearest
    near = [by_lower[m] for m in difflib.get_close_matches(key.lower(), list(by_lower), n=1)]
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return UnknownKeyError(f"Unknown {what} '{key}'.{hint} Known: {', '.join(sorted(known))}.")


# A URL's userinfo password, up to the LAST "@" of the token: an unencoded "@" in the password
# must not leave its tail showing (over-masking a token is the safe failure).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)(?P<pw>[^\s'\"]*)@")
# password=... as a URL query parameter or a libpq connection-string keyword.
_KEY_PASSWORD = re.compile(r"(?i)\b(?P<key>password|passwd|pwd)(?P<eq>\s*=\s*)(?P<pw>'[^']*'|[^&\s'\";,)]+)")


def redact(text: str) -> str:
    """Hide every password in `text`: in URLs (also with an unencoded ``@``) and as ``password=``.

    >>> redact("cannot reach postgresql+psycopg://alice:s3cret@db:5432/cat")
    'cannot reach postgresql+psycopg://alice:***@db:5432/cat'
    >>> redact("postgresql://bob:p@ss@db/cat and postgresql://db/cat?user=u&password=pw")
    'postgresql://bob:***@db/cat and postgresql://db/cat?user=u&password=***'
    """
    return _KEY_PASSWORD.sub(r"\g<key>\g<eq>***", _URL_PASSWORD.sub(r"\g<head>***@", text))

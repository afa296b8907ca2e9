"""The Hugging Face hub as TransformerLens models reach it: the local cache, offline mode, and a
quick check of whether the hub can be reached at all.

Why this exists: with no network, `transformers` retries each request with back-off (about 20 s
on huggingface_hub 2.x) before it gives up, and then names no fix. The catalog instead looks in
the cache first, loads cached models without touching the network, and fails within seconds
with the command to run when a model is neither cached nor reachable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import metadata

# One HEAD request to the hub with this timeout decides "online": long enough for a slow link,
# short enough that an offline run fails in a couple of seconds instead of retrying for 20.
PROBE_TIMEOUT_S = 2.0


def is_cached(repo_id: str) -> bool:
    """Whether the Hugging Face cache holds a snapshot of ``repo_id`` with its config.json.

    A config without the weights counts as cached; the load then says what is missing."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def cache_dir() -> str:
    """The hub cache folder huggingface_hub reads (from HF_HUB_CACHE or HF_HOME)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline_reason() -> str | None:
    """Why the hub must not or cannot be used now, or None when it is reachable.

    HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set by the user wins without any request; otherwise
    one HEAD request to the endpoint, without retries, through huggingface_hub's own HTTP client
    (so proxies and HF_ENDPOINT apply)."""
    from huggingface_hub import constants, is_offline_mode
    from huggingface_hub.utils import get_session

    if is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any failure to get an answer means "not reachable"
        return f"this machine appears offline ({constants.ENDPOINT} cannot be reached)"
    return None


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """Run the body with HF_HUB_OFFLINE on, so `transformers` reads the cache and sends nothing.

    huggingface_hub reads the variable once, at import, into ``constants.HF_HUB_OFFLINE`` (which
    its ``is_offline_mode()`` and therefore `transformers` consult on every call), so both the
    module value and the environment (for code imported later) are set, then restored."""
    from huggingface_hub import constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def download_command(repo_id: str) -> str:
    """The command that fetches ``repo_id`` with the installed huggingface_hub's CLI.

    `hf` replaced `huggingface-cli` in huggingface_hub 0.34, and 1.0 removed the old name."""
    try:
        major, minor = (int(p) for p in metadata.version("huggingface_hub").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        major, minor = 1, 0
    cli = "hf" if (major, minor) >= (0, 34) else "huggingface-cli"
    return f"{cli} download {repo_id}"


def not_cached_message(name: str, repo_id: str, reason: str) -> str:
    """One line: the model is not cached, why the hub is not used, and the three ways out."""
    shown = name if name == repo_id else f"{name} ({repo_id})"
    return (
        f"{shown} is not in the Hugging Face cache ({cache_dir()}) and {reason}. On a machine with "
        f"internet, run `{download_command(repo_id)}` and copy its HF_HOME folder here (point HF_HOME "
        "at it; HF_HUB_OFFLINE=1 then uses the cache without trying the network), or pass "
        "--model PATH with a local Hugging Face model folder."
    )

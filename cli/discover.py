"""`catalog discover` (find circuits and store them as runs), `catalog path` (one path-patching
question) and `catalog runs` (list the runs).

Thin: parse options, call `catalog.jobs.discover_many`, `catalog.jobs.path` or `Catalog.list_runs`,
render. torch is imported only inside the discover and path command bodies, through `catalog.jobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from catalog.discovery.methods import DEFAULT_METHOD, METHODS
from cli._common import JsonOpt, console, err_console, fmt_score, open_catalog, print_json


def _selection(top_k: int | None, threshold: float | None, faithfulness: float | None, absolute: bool,
               greedy: bool = False) -> Any:
    from catalog.errors import InvalidInputError
    from catalog.provenance import Selection, SelectionRule

    given = [(r, v) for r, v in ((SelectionRule.TOP_K, top_k), (SelectionRule.THRESHOLD, threshold),
                                 (SelectionRule.FAITHFULNESS, faithfulness)) if v is not None]
    if len(given) > 1:
        raise InvalidInputError("Give only one of --top-k, --threshold and --faithfulness.")
    if greedy and (not given or given[0][0] is not SelectionRule.TOP_K):
        raise InvalidInputError("--greedy goes with --top-k K (e.g. --top-k 10 --greedy).")
    if not given:
        return None  # the job's default
    return Selection(rule=given[0][0], value=given[0][1], absolute=absolute, greedy=greedy)


def discover(
    ctx: typer.Context,
    task: Annotated[list[str] | None, typer.Option(
        "--task", "-t", metavar="TASK", help="Task to find a circuit for: ioi, colored-objects, greater-than, "
                                             "induction (repeatable); parameters after a colon, e.g. "
                                             "ioi:counterfactual=s2-swap.")] = None,
    task_file: Annotated[Path | None, typer.Option(
        "--task-file", metavar="FILE.jsonl", help="Your own task: JSONL records of clean, corrupt, answer, "
                                                  "wrong_answer.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="catalog-deep (the deeper embedded model), a TransformerLens "
                                               "name (gpt2-small, ...) or a local Hugging Face folder "
                                               "(default: the embedded catalog-default).")] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", metavar="METHOD", help=f"{', '.join(METHODS)} (default {DEFAULT_METHOD}; "
                                           "repeatable; `catalog methods` describes them).")] = None,
    ablation: Annotated[str, typer.Option(
        "--ablation", metavar="ABLATION", help="What replaces a patched component: counterfactual, mean "
                                               "or zero.")] = "counterfactual",
    top_k: Annotated[int | None, typer.Option(
        "--top-k", metavar="K", help="Keep the K best edges (components for activation patching).")] = None,
    greedy: Annotated[bool, typer.Option(
        "--greedy", help="With --top-k: grow the K edges from the logits backwards, each one adjacent to "
                         "the circuit so far, so the circuit stays connected.")] = False,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", metavar="T", help="Keep edges (components) scoring at least T.")] = None,
    faithfulness: Annotated[float | None, typer.Option(
        "--faithfulness", metavar="F", help="Keep the smallest top-k circuit with faithfulness >= F "
                                            "(default: 0.8).")] = None,
    absolute: Annotated[bool, typer.Option(
        "--absolute/--signed", help="Rank by |score| (default) or by signed score.")] = True,
    n: Annotated[int | None, typer.Option("--n", metavar="N", help="Examples per task (default 128).")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="SEED", help="Dataset and run seed.")] = 0,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", metavar="B", help="Examples per forward pass (default 32).")] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", metavar="S", help="Integrated-gradient steps, for methods that take them (same as "
                                     "--param steps=S).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="KEY=VALUE", help="A method parameter (repeatable); `catalog methods` lists "
                                             "each method's.")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", metavar="DEVICE", help="cpu, cuda, cuda:1, ... (default: CUDA when present).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", metavar="DTYPE", help="float32, float16 or bfloat16.")] = "float32",
    positions: Annotated[bool, typer.Option(
        "--positions", help="Score each component at each role the task names (a1.h0@END, m0@S2) "
                            "instead of at all positions at once.")] = False,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="TEXT", help="Explain one text instead of a task: the model's top next token "
                                         "(attribution-graph; stored as task 'prompt').")] = None,
    transcoders: Annotated[Path | None, typer.Option(
        "--transcoders", metavar="PATH", help="Transcoder set folder for attribution-graph (default: the set "
                                              "shipped for the model; same as --param transcoders=PATH).")] = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="Name for the stored circuit(s).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", metavar="TAG", help="Tag to add (repeatable).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Discover circuits (each task x method is one run) and store them in the catalog."""
    from catalog import jobs
    from catalog.views import DiscoveryResult

    cat = open_catalog(ctx, create=True)
    circuits = jobs.discover_many(
        cat, task or [], method or [DEFAULT_METHOD], model=model, ablation=ablation,
        selection=_selection(top_k, threshold, faithfulness, absolute, greedy), n=n, seed=seed,
        batch_size=batch_size, device=device, dtype=dtype, task_file=task_file, progress=not json_,
        name=name, tags=tuple(tag or ()), params=_params(param or [], steps, transcoders),
        notify=lambda msg: err_console.print(msg), positions=positions, prompt=prompt)
    results = [DiscoveryResult.of(c) for c in circuits]
    if json_:
        print_json(results)
        return
    table = Table("id", "run", "task", "method", "nodes", "edges", "heads", "mlps", "faith.", "CPR", "CMD",
                  "seconds", box=None, pad_edge=False)
    for s in results:
        table.add_row(str(s.id), str(s.run_id), s.task, s.method or "-", str(s.nodes), str(s.edges),
                      str(s.heads), str(s.mlps), fmt_score(s.faithfulness), fmt_score(s.cpr),
                      fmt_score(s.cmd), f"{s.seconds:.1f}")
    console.print(table)


def _params(given: list[str], steps: int | None, transcoders: Path | None = None) -> dict[str, Any]:
    """``--param KEY=VALUE`` options as a dict, values read as JSON when they parse (3, 0.5,
    true, null), else as strings; ``--steps S`` is ``--param steps=S``, ``--transcoders PATH``
    ``--param transcoders=PATH``."""
    import json

    from catalog.errors import InvalidInputError

    out: dict[str, Any] = {}
    for text in given:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param needs KEY=VALUE (e.g. --param steps=10), got '{text}'.")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    if steps is not None:
        out["steps"] = steps
    if transcoders is not None:
        out["transcoders"] = str(transcoders)
    return out


def path(
    sender: Annotated[str, typer.Argument(
        metavar="SENDER", help="What is patched: a head (a1.h0), an MLP (m0) or input, optionally at a "
                               "role or token index (a1.h0@END, m0@5).")],
    receivers: Annotated[list[str], typer.Argument(
        metavar="RECEIVER...", help="Where its change may enter: logits, a head's inputs (a2.h1 = q, k and "
                                    "v; 'a2.h1<q>'; 'a2.h1@END<k>') or an MLP's input (m3).")],
    task: Annotated[str, typer.Option(
        "--task", "-t", metavar="TASK", help="Task whose prompts to use (default ioi).")] = "ioi",
    task_file: Annotated[Path | None, typer.Option(
        "--task-file", metavar="FILE.jsonl", help="Your own task file instead of --task.")] = None,
    freeze: Annotated[str, typer.Option(
        "--freeze", metavar="wang|direct", help="wang (default): every other head frozen at its clean "
                                               "output, MLPs recomputed; direct: every other head and MLP "
                                               "frozen (the direct path only).")] = "wang",
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="catalog-deep, a TransformerLens name or a local folder "
                                               "(default: the embedded catalog-default).")] = None,
    ablation: Annotated[str, typer.Option(
        "--ablation", metavar="ABLATION", help="The sender's patched value: counterfactual, mean or "
                                               "zero.")] = "counterfactual",
    n: Annotated[int | None, typer.Option("--n", metavar="N", help="Examples (default 128).")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="SEED", help="Dataset seed.")] = 0,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", metavar="B", help="Examples per forward pass (default 32).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", metavar="DEVICE", help="cpu, cuda, ... (default: CUDA when present).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Path patching: how much the task metric drops when SENDER's change reaches only RECEIVERs."""
    from catalog import jobs

    result = jobs.path(None if task_file else task, sender, receivers, model=model, freeze=freeze,
                       ablation=ablation, n=n, seed=seed, batch_size=batch_size, device=device,
                       task_file=task_file, progress=not json_, notify=lambda msg: err_console.print(msg))
    if json_:
        print_json(result)
        return
    console.print(f"{result.task} on {result.model}: {result.describe()}")
    console.print(f"freezing: {result.freeze_description}")


def runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        "--status", metavar="STATUS", help="running, done, failed, interrupted or stale.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", metavar="MODEL", help="Only runs on this model.")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", metavar="TASK", help="Only runs for this task.")] = None,
    cleanup: Annotated[bool, typer.Option(
        "--cleanup", help="Mark stale runs (running, but their process is gone) failed, with the reason.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List discovery runs with their status, timing and the circuit each stored.

    A run whose process died without a word (killed, power loss) shows as stale; --cleanup
    records those as failed."""
    cat = open_catalog(ctx)
    if cleanup:
        cleaned = cat.cleanup_runs()
        if json_:
            print_json(cleaned)
            return
        for r in cleaned:
            console.print(f"run {r.id}: marked failed ({r.error})")
        if not cleaned:
            console.print("no stale runs.")
        return
    rows = cat.list_runs(status=status, model=model, task=task)
    if json_:
        print_json(rows)
        return
    if not rows:
        console.print("no runs yet (start one with `catalog discover --task ioi`).")
        return
    table = Table("run", "status", "model", "task", "method", "started", "seconds", "circuit", "owner", "error",
                  box=None, pad_edge=False)
    for r in rows:
        owner = f"{r.pid}@{r.host}" if r.host and r.pid else "-"
        table.add_row(str(r.id), r.state, r.model, r.task, r.provenance.method or "-",
                      r.started_at.strftime("%Y-%m-%d %H:%M:%S"), fmt_score(r.seconds),
                      ",".join(map(str, r.circuit_ids)) or "-", owner,
                      r.error or (f"{r.stale_reason}; `catalog runs --cleanup` marks it failed" if r.stale else ""))
    console.print(table)


def methods(json_: JsonOpt = False) -> None:
    """List the discovery methods: slug, what they return, their parameters (no torch needed)."""
    from catalog.views import MethodInfo

    rows = [MethodInfo.of(s, default=s.slug == DEFAULT_METHOD) for s in METHODS.values()]
    if json_:
        print_json(rows)
        return
    table = Table("method", "returns", "parameters (defaults)", "summary", box=None, pad_edge=False)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r.parameters.items()) or "-"
        table.add_row(r.method + (" *" if r.default else ""), r.returns, params, r.summary)
    console.print(table)
    console.print("* the default. Pass parameters as --param KEY=VALUE to `catalog discover`.")

"""Discovery jobs: score, select and evaluate a circuit, recorded in the catalog as a run.

Each (task, method) pair is one run: ``running`` when it starts (with a heartbeat), ``done``
with its circuit stored in the same transaction, ``failed`` with the error, or ``interrupted``
with the signal (Ctrl-C, SIGTERM, SIGHUP), and then no circuit.
The error is then re-raised for the caller (the CLI turns it into one line, or exit code 130).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.discovery import DEFAULT_METHOD, Granularity, MethodSpec, get_method
from catalog.discovery.scoring import check_positions
from catalog.errors import DiscoveryError, InvalidInputError, TaskError, suggest
from catalog.provenance import (
    PART_TAG,
    Ablation,
    Circuit,
    Provenance,
    Selection,
    SelectionRule,
    Source,
)

if TYPE_CHECKING:
    from catalog.store import Catalog

#: Examples per task. With the embedded model, the main job (ioi and colored-objects, scored,
#: selected and evaluated) took 1.5-3 minutes on two CPU cores shared with other work.
DEFAULT_N = 128
#: Examples per forward pass.
DEFAULT_BATCH_SIZE = 32
#: The stored circuit: the smallest top-k one keeping 80% of the task behaviour.
DEFAULT_SELECTION = Selection(rule=SelectionRule.FAITHFULNESS, value=0.8, absolute=True)

#: Recorded for a method that selects its own circuit (ACDC, path patching).
OWN_CHOICE = Selection(rule=SelectionRule.GIVEN)

Notify = Callable[[str], None]


def discover(cat: Catalog, task: str | None, model: Any = None, method: str = DEFAULT_METHOD,
             ablation: Ablation | str = Ablation.COUNTERFACTUAL, selection: Selection | None = None,
             n: int | None = None, seed: int = 0, batch_size: int | None = None,
             device: str | None = None, dtype: str = "float32", task_file: str | Path | None = None,
             progress: bool = True, name: str | None = None, tags: Sequence[str] = (),
             params: dict[str, Any] | None = None, dataset: Any = None,
             notify: Notify | None = None, positions: bool = False, prompt: str | None = None) -> Circuit:
    """Discover one circuit and store it as a run; return it with its catalog id.

    `model` is a model name or path, a `LoadedModel`, or None for the embedded default.
    `task` names a registered task, with build options after a colon
    (``ioi:counterfactual=s2-swap``), or, with `task_file`, names the file's task; a prebuilt
    `dataset` skips building one. `params` are method parameters (e.g. ``{"steps": 5}``).
    `positions` scores (component, role) nodes such as ``a1.h0@END`` instead of components.
    `prompt` explains one text instead of a task (the model's top next token; stored as task
    ``prompt``), for methods that work on single prompts (attribution graphs).
    """
    return discover_many(cat, [task] if task else [], [method], model=model, prompt=prompt,
                         ablation=ablation, selection=selection, n=n, seed=seed,
                         batch_size=batch_size, device=device, dtype=dtype, task_file=task_file,
                         progress=progress, name=name, tags=tags, params=params, dataset=dataset,
                         notify=notify, positions=positions)[0]


def discover_many(cat: Catalog, tasks: Sequence[str], methods: Sequence[str], model: Any = None,
                  ablation: Ablation | str = Ablation.COUNTERFACTUAL, selection: Selection | None = None,
                  n: int | None = None, seed: int = 0, batch_size: int | None = None,
                  device: str | None = None, dtype: str = "float32", task_file: str | Path | None = None,
                  progress: bool = True, name: str | None = None, tags: Sequence[str] = (),
                  params: dict[str, Any] | None = None, dataset: Any = None,
                  notify: Notify | None = None, positions: bool = False,
                  prompt: str | None = None) -> list[Circuit]:
    """Run every (task, method) pair in turn, one run each, loading the model once.

    With `prompt` (and no task), each method explains that one text (see `discover`).

    Stops at the first failure (that run is marked failed; earlier circuits stay stored).
    Each method receives the `params` it takes; a parameter no method takes is an error.
    """
    specs = [get_method(m) for m in methods] or [get_method(DEFAULT_METHOD)]
    if positions:
        for spec in specs:
            check_positions(spec.slug)
    params = dict(params or {})
    unused = set(params) - {k for spec in specs for k in spec.defaults}
    if unused:
        takes = "; ".join(f"{s.slug}: {', '.join(sorted(s.defaults)) or 'none'}" for s in specs)
        raise InvalidInputError(f"No chosen method takes {', '.join(sorted(unused))}. Parameters ({takes}).")
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise suggest(str(ablation), [a.value for a in Ablation], "ablation") from None
    if selection is not None and all(s.granularity is Granularity.CIRCUIT for s in specs):
        raise InvalidInputError(
            f"{', '.join(s.slug for s in specs)} selects its own circuit, so --top-k, --threshold and "
            "--faithfulness do not apply; tune it with its parameters instead (catalog methods lists "
            "them, e.g. --param threshold=0.02).")
    selection = selection or DEFAULT_SELECTION
    n = DEFAULT_N if n is None else n
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if n < 1 or batch_size < 1:
        raise InvalidInputError(f"--n and --batch-size must be at least 1 (got {n} and {batch_size}).")
    say = notify or (lambda _msg: None)
    if prompt is not None:
        if tasks or task_file is not None or dataset is not None:
            raise InvalidInputError("Give either --prompt TEXT or a task (--task, --task-file), not both.")
        from catalog.tasks.prompt import PROMPT_TASK

        task_specs: list[tuple[str, Any, dict[str, Any]]] = [(PROMPT_TASK, None, {})]
    else:
        task_specs = _task_specs(tasks, task_file, dataset)

    loaded = _load(model, device, dtype, say)
    circuits = []
    for task_name, task_spec, options in task_specs:
        started = time.perf_counter()
        if prompt is not None:
            from catalog.tasks.prompt import prompt_dataset

            ds = prompt_dataset(loaded, prompt)
            name = name or prompt.strip()[:120]
        else:
            ds = dataset if dataset is not None else task_spec.build(loaded, n=n, seed=seed, **options)
        built = time.perf_counter() - started
        for spec in specs:
            own = spec.params({k: v for k, v in params.items() if k in spec.defaults})
            if options:
                own["task_options"] = dict(options)
            if positions:
                own["positions"] = True
            # A method that selects its own circuit is recorded as such ("given" by it), with the
            # parameters that drove its choice in method_params.
            chosen_by = OWN_CHOICE if spec.granularity is Granularity.CIRCUIT else selection
            rule = "its own choice" if chosen_by is OWN_CHOICE else selection.describe()
            say(f"{task_name}: {spec.slug} on {len(ds)} examples ({ablation.value} ablation, {rule})")
            circuits.append(_run_one(cat, loaded, task_name, ds, spec, own,
                                     ablation, chosen_by, seed, batch_size, dtype, progress, name,
                                     tuple(tags), built, say))
    return circuits


def path(task: str | None, sender: str, receivers: Sequence[str], model: Any = None,
         freeze: str = "wang", ablation: Ablation | str = Ablation.COUNTERFACTUAL, n: int | None = None,
         seed: int = 0, batch_size: int | None = None, device: str | None = None, dtype: str = "float32",
         task_file: str | Path | None = None, progress: bool = True, notify: Notify | None = None) -> Any:
    """Answer one path-patching question on a task's prompts; returns a `PathResult` (nothing is stored).

    `sender` is ``NODE[@ROLE]``; each receiver ``NODE[@ROLE][<q|k|v>]`` (see
    `catalog.discovery.methods.path_patching`). Bad ids and conventions fail before any model loads.
    """
    from catalog.discovery.methods.path_patching import freeze_of, parse_receiver, parse_sender, path_effect

    parse_sender(sender)
    for r in receivers:
        parse_receiver(r)
    if not receivers:
        raise InvalidInputError("Name at least one receiver: logits, a head (a2.h1, a2.h1<q>) or an MLP (m3).")
    freeze_of(freeze)
    n = DEFAULT_N if n is None else n
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if n < 1 or batch_size < 1:
        raise InvalidInputError(f"--n and --batch-size must be at least 1 (got {n} and {batch_size}).")
    (task_name, task_spec, options), *more = _task_specs([task] if task else [], task_file, None)
    if more:
        raise InvalidInputError("Path patching answers one question on one task: give --task or --task-file, not both.")
    loaded = _load(model, device, dtype, notify or (lambda _msg: None))
    ds = task_spec.build(loaded, n=n, seed=seed, **options)
    with _progress(progress, f"{task_name} / path patching") as bar:
        return path_effect(loaded, ds, sender, receivers, freeze, ablation, batch_size, task=task_name,
                           progress=bar)


def _task_specs(tasks: Sequence[str], task_file: str | Path | None,
                dataset: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    """(task name, TaskSpec or None, build options) for each task to run, checked before any
    model loads. A task's options follow its slug: ``ioi:counterfactual=s2-swap``."""
    if dataset is not None:
        if len(tasks) != 1 or task_file is not None:
            raise InvalidInputError("A prebuilt dataset goes with exactly one task name and no task file.")
        return [(tasks[0], None, {})]
    from catalog.tasks import get_task, task_from_file
    from catalog.tasks.base import parse_task_ref, task_name

    out: list[tuple[str, Any, dict[str, Any]]] = []
    for ref in tasks:
        slug, options = parse_task_ref(ref)
        spec = get_task(slug)  # `--task IOI` runs, and is stored as, ioi
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in sorted(spec.options.items())) or "none"
            raise TaskError(f"Task {spec.slug} has no parameter {', '.join(unknown)}. Its parameters: {known}.")
        out.append((task_name(spec.slug, spec, options), spec, options))
    if task_file is not None:
        spec = task_from_file(task_file)
        out.append((spec.slug, spec, {}))
    if not out:
        raise TaskError("Name a task with --task (e.g. --task ioi) or give --task-file FILE.jsonl.")
    return out


def _load(model: Any, device: str | None, dtype: str, say: Notify) -> Any:
    if model is not None and not isinstance(model, (str, Path)):
        return model  # an already loaded model (LoadedModel or HookedTransformer)
    from catalog.models import load_model

    loaded = load_model(None if model is None else str(model), device=device, dtype=dtype)
    describe = getattr(loaded, "describe", None)
    if getattr(loaded, "is_default", False):
        say("No --model given: using the embedded default model, "
            + (describe() if callable(describe) else getattr(loaded, "name", "")))
    elif callable(describe):
        say(f"model: {describe()}")
    return loaded


def _run_one(cat: Catalog, loaded: Any, task: str, ds: Any, spec: MethodSpec, method_params: dict[str, Any],
             ablation: Ablation, selection: Selection, seed: int, batch_size: int, dtype: str,
             progress: bool, name: str | None, tags: tuple[str, ...], built_s: float,
             say: Notify = lambda _msg: None) -> Circuit:
    """One run: start it, score, select, evaluate, store; on any error or Ctrl-C mark it failed.

    An empty circuit fails the run (the message says what to pass instead); a selection that
    dropped edges as dangling is stored with a warning, said now and kept in the metrics."""
    import torch

    from catalog.discovery import SelectedCircuit, evaluate, evaluator, model_and_shape, select
    from catalog.discovery.attention import record_attention
    from catalog.discovery.scoring import score_result
    from catalog.discovery.selection import check_selected
    from catalog.naming import NodeKind

    method = spec.slug
    _, shape = model_and_shape(loaded)
    run_params = {k: v for k, v in method_params.items() if k not in ("task_options", "positions")}
    positions = bool(method_params.get("positions"))
    provenance = Provenance(
        source=Source.DISCOVERY, method=method,
        method_params={**method_params, "batch_size": batch_size, "dtype": dtype},
        dataset_hash=getattr(ds, "dataset_hash", None), dataset_size=len(ds), seed=seed,
        metric=getattr(ds, "metric_name", None), ablation=ablation, selection=selection,
    )
    # tracked_run: heartbeat while scoring; on an error, Ctrl-C, SIGTERM or SIGHUP the run is
    # recorded as failed or interrupted, with the reason, before the error goes on.
    with cat.tracked_run(shape, task, provenance) as run_id:
        timings = {"dataset": round(built_s, 3)}
        with _progress(progress, f"{task} / {method}") as bar:
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            graph, result = score_result(loaded, ds, spec, ablation=ablation, batch_size=batch_size,
                                         progress=bar, positions=positions, **run_params)
            timings["score"] = round(time.perf_counter() - t0, 3)
            own = result if isinstance(result, SelectedCircuit) else SelectedCircuit(graph)
            if own.details:
                provenance = provenance.model_copy(
                    update={"method_params": {**provenance.method_params, **own.details}})
            # Patching components evaluates circuits of heads and MLPs; a circuit of features
            # (an attribution graph) is stored with the method's own measurements instead.
            evaluable = any(n.kind in (NodeKind.ATTENTION, NodeKind.MLP) for n in graph.nodes)
            t0 = time.perf_counter()
            ev = evaluator(loaded, ds, ablation, batch_size, progress=bar, positions=positions) if evaluable else None
            if spec.granularity is Granularity.CIRCUIT:  # a method that selects keeps its choice
                chosen, warnings = graph, []
                if not chosen.circuit_edges:
                    raise DiscoveryError(
                        f"{method} kept no edge on a path from input to logits: its threshold removed "
                        "everything. Pass a lower one (--param threshold=...); `catalog methods` shows the default.")
            else:
                chosen = select(graph, selection, ev)
                warnings = check_selected(graph, chosen, selection)
            for warning in warnings:
                say(f"warning: {warning}")
            timings["select"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            metrics = dict(own.metrics) if ev is None else {**own.metrics, **evaluate(chosen, ev, selection.absolute)}
            timings["evaluate"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        attention = record_attention(getattr(loaded, "model", loaded), ds, chosen.heads)
        timings["attention"] = round(time.perf_counter() - t0, 3)
        metrics["timings"] = timings
        if warnings:
            metrics["selection_warnings"] = warnings
        circuit = Circuit(chosen, task, provenance, name=name, tags=tags, metrics=metrics, run_id=run_id)
        parts = [_part(p, i, circuit) for i, p in enumerate(own.parts)]
        cid = cat.finish_run(run_id, circuit, attention, parts=parts)
    return Circuit(chosen, task, provenance, name=name, tags=tags, metrics=metrics, id=cid, run_id=run_id)


def _part(part: Any, index: int, whole: Circuit) -> Circuit:
    """A per-example circuit of a run (e.g. one prompt's attribution graph), stored with the run
    beside the circuit it aggregates: named after it with the example's index, tagged `PART_TAG`."""
    from catalog.graph import CircuitGraph

    own = {k: v for k, v in whole.provenance.method_params.items() if k not in ("attribution", "prompts")}
    prov = whole.provenance.model_copy(update={
        "method_params": {**own,
                          **part.details, "part_of_run": True, "example": index},
        "dataset_size": 1})
    base = whole.name or whole.task
    g = part.graph  # a method sees only the model, not its catalog name: store the run's shape
    graph = g if g.shape == whole.graph.shape else CircuitGraph(whole.graph.shape, g.nodes, g.edges, g.annotations)
    return Circuit(graph, whole.task, prov, name=f"{base} #{index}", tags=(*whole.tags, PART_TAG),
                   metrics=dict(part.metrics))


@contextmanager
def _progress(enabled: bool, title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(phase, done, total)`` drawing a rich bar on stderr when enabled."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Steps per second (batches, or whatever the phase counts)."""

        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:.2f}/s" if task.speed else "")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"{title}: {phase}", total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update

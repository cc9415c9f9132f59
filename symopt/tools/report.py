"""``symopt report RUN``: PNG plots and a short markdown summary of a run directory.

Writes into ``RUN/report`` (or ``-o DIR``):

* ``fitness.png``: best fitness so far over the candidates trained on the search
  stage (the first stage of ``evaluations.jsonl``), every candidate as a faint dot,
  and the start program (id 0) as a horizontal line.
* ``meta_validation.png`` (when the run has ``meta_validation.json``): the Lion
  paper's meta-validation curve, after each funnel check of the search (every
  ``campaign.check_interval`` trainings and at the end): the best so far on each
  stage, and on validation the funnel's pick and the best of any candidate.
* ``curves.png``: training loss of the hall-of-fame winner, AdamW and Lion on each
  (proxy) task, each at its best learning rate on a grid of factors of the task's
  AdamW rate (``--lrs``; Lion wants a smaller rate than AdamW). Needs
  ``hall_of_fame.json``; ``toy_*`` tasks have no curves and are skipped.
* ``pareto.png``: fitness against optimizer-state memory (4 bytes per parameter in
  float32 for each state slot that can reach the update) for every search-stage
  candidate, with the Pareto front (best fitness for at most that memory).
* ``report.md``: what the PNGs show, the winner's program and the front as a table.

A run without ``hall_of_fame.json`` (a log written by an experiment script) still
gets ``fitness.png`` and ``pareto.png``; the curves are skipped with a note.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import pathlib
from typing import Sequence

import numpy as np

import proxy_tasks
from symopt.evaluation import evaluate
from symopt.evaluation.fitness import Grid
from symopt.programs import baselines
from symopt.programs.program import Program
from symopt.campaign.campaign import programs_functions
from symopt.tools.inspect_run import state_bytes as _program_state_bytes
from symopt.storage.records import CheckPoint, LogRecord
from symopt.storage.run_dir import RunData

BASELINES = ("adamw", "lion")
"""The baselines drawn next to the winner on the loss curves."""

# -- data --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    """One trained candidate: its id, optimizer-state memory (bytes per parameter) and fitness."""

    id: int
    memory: float
    fitness: float


def first_stage(run: RunData) -> str:
    """The search stage's name: ``config.json`` campaign.stages[0].name, else the log's first line's stage."""
    stages = run.config.stages if run.config else ()
    if stages:
        return stages[0].get("name") or "stage1"  # as symopt.config.space.stage_name
    return run.records[0].stage


def search_grid(run: RunData) -> tuple[float, ...] | None:
    """The search stage's learning-rate factors in ``config.json`` (None where it has none, or not a grid)."""
    stages = run.config.stages if run.config else ()
    factors = stages[0].get("lr_factors") if stages else None
    try:
        return Grid(tuple(factors)).factors if isinstance(factors, list) else None
    except (TypeError, ValueError):
        return None


def search_records(records: Sequence[LogRecord], stage: str) -> list[LogRecord]:
    """The records of the search stage, in log order (later funnel stages and validation left out)."""
    return [r for r in records if r.stage == stage]


def best_so_far(records: Sequence[LogRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Each record's fitness (a logged null is DIVERGED, as the search counts it) and the running maximum, in
    log order."""
    fitness = np.array([r.score for r in records], dtype=float)
    return fitness, np.maximum.accumulate(fitness) if len(fitness) else fitness


@functools.lru_cache(maxsize=None)
def state_bytes(program: Program) -> float:
    """Optimizer state per parameter in float32 of a program (see inspect_run.state_bytes), once per program."""
    return _program_state_bytes(program)


def points(records: Sequence[LogRecord]) -> list[Point]:
    """Every record (as :func:`~symopt.storage.run_dir.read_log` read it) as a (memory, fitness) point."""
    return [Point(r.id, state_bytes(r.program), r.score) for r in records]


def pareto_front(pts: Sequence[Point]) -> list[Point]:
    """The points no other beats on both axes: best fitness for at most that memory, by increasing memory.

    Of equal points the lowest id is kept.
    """
    front: list[Point] = []
    for p in sorted(pts, key=lambda p: (p.memory, -p.fitness, p.id)):
        if not front or p.fitness > front[-1].fitness:
            front.append(p)
    return front


def curve_tasks(tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """The proxy tasks that can have loss curves, and the ``toy_*`` ones skipped. Raises ValueError on unknown names."""
    known = set(proxy_tasks.names())
    unknown = [t for t in tasks if t not in known and not proxy_tasks.is_import_path(t)]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; proxy tasks: {', '.join(sorted(known))}")
    toys = [t for t in tasks if proxy_tasks.tag(t) == "toy"]
    return [t for t in tasks if t not in toys], toys


@dataclasses.dataclass(frozen=True)
class Curve:
    """One optimizer on one task at its best learning-rate factor of the grid."""

    factor: float
    run: object  # symopt.evaluation.Run


def loss_curves(winner, tasks: Sequence[str], steps: int | None = None, seed: int = 0,
                lrs: Sequence[float] = (1.0,), threads: int | None = None) -> dict[str, dict[str, Curve]]:
    """Train the winner, AdamW and Lion on each task at each lr factor; keep each one's best eval loss.

    ``{task: {label: Curve}}``; a factor scales the task's schedule (as in ``symopt compare``
    and a campaign's grid), so ``lrs=(1.0,)`` trains everything at the task's own rate. Each
    optimizer trains all its factors in one compiled call, on executables of only the opcodes
    the three call. The tasks train on ``threads`` threads (default: one per usable core): each
    compiled call runs on its caller's thread, so two tasks train at once on two cores, with the
    same results as one after the other.
    """
    programs = {"winner": winner, **{name: baselines.get(name) for name in BASELINES}}
    functions = programs_functions(programs.values())

    def task_curves(task: str) -> dict[str, Curve]:
        results = evaluate(list(programs.values()), [task], seeds=(seed,), steps=steps, grid=Grid(tuple(lrs)),
                           functions=functions)
        best: dict[str, Curve] = {}
        for label, r in zip(programs, results):
            for f in lrs:
                run = r.run(task, seed, f)
                loss = run.eval_loss if math.isfinite(run.eval_loss) and not run.diverged else math.inf
                old = best.get(label)
                if old is None or loss < (old.run.eval_loss if not old.run.diverged else math.inf):
                    best[label] = Curve(float(f), run)
        return best

    threads = max(1, min(threads or len(os.sched_getaffinity(0)), len(tasks)))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return dict(zip(tasks, pool.map(task_curves, tasks)))


# -- plots --------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg via savefig

    return Figure(figsize=(width, height), layout="constrained")


def _zoom(lo: float, hi: float) -> tuple[float, float]:
    """Y limits showing [lo, hi] with room: as much again below ``lo`` and a fifth above ``hi``."""
    span = max(hi - lo, 0.05)
    return lo - span, hi + 0.2 * span


def plot_fitness(records: Sequence[LogRecord], stage: str, path: pathlib.Path) -> None:
    """Best fitness so far over the trained candidates of the search stage."""
    fitness, best = best_so_far(records)
    n = np.arange(1, len(fitness) + 1)
    start = next((r.score for r in records if r.id == 0), None)
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    # zoom on the progress: from below the start (or first) fitness to the best; worse candidates fall off
    lo = min(best[0], start if start is not None else best[0])
    bottom, top = _zoom(lo, best[-1])
    below = int(np.sum(fitness < bottom))
    ax.scatter(n, fitness, s=8, alpha=0.6 if len(n) < 300 else 0.3, color="tab:gray", linewidths=0,
               label="candidate" + (f" ({below} below the plot)" if below else ""))
    ax.step(n, best, where="post", color="tab:blue", lw=2, label="best so far")
    if start is not None:
        ax.axhline(start, color="tab:orange", ls="--", lw=1.2, label=f"start program (id 0): {start:+.3f}")
    ax.set_ylim(bottom, top)
    ax.set_xlabel(f"candidates trained on stage {stage!r}")
    ax.set_ylabel("fitness  (0 = AdamW, each at its best lr; higher is better)")
    ax.set_title(f"search stage {stage!r}: best {best[-1]:+.3f} after {len(fitness)} candidates")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)


def plot_meta_validation(curve: Sequence[CheckPoint], stages: Sequence[str], path: pathlib.Path) -> None:
    """The Lion paper's meta-validation curve: after each funnel check, the best so far on each stage and,
    on validation, the funnel's pick (the best on the last stage) and the best validated candidate."""
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    n = [p.trained for p in curve]

    def series(values):
        return [np.nan if v is None else float(v) for v in values]

    for key in stages:
        ax.plot(n, series(p.best.get(key) for p in curve), marker="o", lw=1.2, label=f"best on {key!r}")
    ax.plot(n, series(p.pick_validation for p in curve), marker="s", lw=2, color="black",
            label="validation of the funnel's pick")
    ax.plot(n, series(p.best_validation for p in curve), ls=":", color="black",
            label="best validation of any candidate")
    ax.axhline(0.0, color="tab:orange", ls="--", lw=1, label="AdamW (the start)")
    ax.set_xlabel("candidates trained on the search stage")
    ax.set_ylabel("fitness  (0 = AdamW; higher is better)")
    ax.set_title("meta-validation: the funnel's checks during the search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=120)


def plot_pareto(pts: Sequence[Point], front: Sequence[Point], hall: Sequence[Point], stage: str,
                path: pathlib.Path) -> None:
    """Fitness against state memory: every candidate (jittered), the front as a step line, the hall of fame."""
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    fitness = np.array([p.fitness for p in pts])
    good = fitness[np.isfinite(fitness)]  # a diverged candidate (DIVERGED, -inf) counts as below the plot
    marked = [p.fitness for p in [*front, *hall] if math.isfinite(p.fitness)]
    lo = min([float(np.median(good))] * bool(len(good)) + marked, default=0.0)
    bottom, top = _zoom(lo, max((p.fitness for p in front if math.isfinite(p.fitness)), default=lo))
    below = int(np.sum(fitness < bottom))
    rng = np.random.default_rng(0)
    x = np.array([p.memory for p in pts], float) + rng.uniform(-0.7, 0.7, len(pts))
    ax.scatter(x, fitness, s=8, alpha=0.3, color="tab:gray", linewidths=0,
               label="candidate (jittered in x" + (f"; {below} below the plot)" if below else ")"))
    fx, fy = [p.memory for p in front], [p.fitness for p in front]
    left, right = min(p.memory for p in pts) - 3, max(p.memory for p in pts) + 3
    ax.step(fx + [right], fy + fy[-1:], where="post", color="tab:blue", lw=1.5, label="Pareto front")
    ax.scatter(fx, fy, s=40, color="tab:blue", zorder=3)
    for i, p in enumerate(front):
        ax.annotate(f"id {p.id}", (p.memory, p.fitness), xytext=(4, -12 if i % 2 else 6),
                    textcoords="offset points", fontsize=8, color="tab:blue")
    if hall:
        ax.scatter([p.memory for p in hall], [p.fitness for p in hall], s=110, marker="*", color="tab:red",
                   edgecolors="black", linewidths=0.5, zorder=4, label="hall of fame")
    ax.set_ylim(bottom, top)
    ax.set_xlim(left, right)
    ax.set_xticks(sorted({p.memory for p in pts}))
    ax.set_xlabel("optimizer state memory (bytes per parameter, float32)")
    ax.set_ylabel("fitness on the search stage")
    ax.set_title(f"fitness against state memory ({len(pts)} candidates of stage {stage!r})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)


def plot_curves(curves: dict[str, dict[str, Curve]], rank: int, path: pathlib.Path, tuned: bool) -> None:
    """One subplot per task: the training loss of the winner, AdamW and Lion (log scale)."""
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig = _figure(5 * cols, 0.4 + 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    colors = {"winner": "tab:red", "adamw": "tab:blue", "lion": "tab:green"}
    for ax, (task, runs) in zip(axes, curves.items()):
        positive, shown = True, []  # shown: the finite losses of the runs that did not diverge
        for label, curve in runs.items():
            run = curve.run
            losses = np.asarray(run.losses, float)
            ok = np.isfinite(losses)
            positive &= bool(np.all(losses[ok] > 0))
            name = f"rank {rank} (found)" if label == "winner" else {"adamw": "AdamW", "lion": "Lion"}[label]
            if tuned:
                name += f", lr x{curve.factor:g}"
            if run.diverged:
                name += f" - diverged, stopped after {run.steps_run} steps"
            else:
                shown.append(losses[ok])
                if math.isfinite(run.eval_loss):
                    name += f" (eval {run.eval_loss:.3g})"
            ax.plot(np.arange(len(losses))[ok], losses[ok], color=colors[label], lw=1.2, label=name)
        if positive:
            ax.set_yscale("log")
        shown = np.concatenate(shown) if shown else np.array([])
        if shown.size:  # a diverged run's explosion would squash the others: clip it
            lo, hi = shown.min(), shown.max()
            ax.set_ylim(*((lo / 1.5, hi * 3) if positive else (lo - 0.1 * (hi - lo), hi + 0.5 * (hi - lo))))
        task_lr = proxy_tasks.get(task).learning_rate
        steps = max(c.run.steps for c in runs.values())
        ax.set_title(f"{task}: peak lr {task_lr:g} (warm-up, cosine), {steps} steps", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("training loss; each optimizer at its best factor of the task's AdamW learning rate (lowest "
                 "eval loss on the grid)" if tuned else "training loss; every optimizer at the task's AdamW "
                 "learning rate", fontsize=10)
    fig.savefig(path, dpi=120)


# -- summary and command --------------------------------------------------------------------------------


def summary(written: Sequence[pathlib.Path], winner_text: str | None, rank: int, front: Sequence[Point],
            notes: Sequence[str]) -> str:
    """``report.md``: the figures, the winner's simplified program and the Pareto front."""
    about = {"fitness.png": "best fitness so far over the candidates trained on the search stage",
             "meta_validation.png": "after each funnel check: the best so far on each stage and on validation",
             "curves.png": "training loss of the winner against AdamW and Lion on each task",
             "pareto.png": "fitness against optimizer-state memory, with the Pareto front"}
    lines = ["# Run report", ""]
    lines += [f"- [{p.name}]({p.name}): {about[p.name]}" for p in written]
    lines += [f"- note: {n}" for n in notes]
    lines += ["", f"## Winner (hall of fame rank {rank}, simplified)", ""]
    lines += ["```python", winner_text.rstrip("\n"), "```"] if winner_text else ["none: no hall of fame in this run"]
    lines += ["", "## Pareto front (search stage)", "", "| memory (B/param) | fitness | id |", "|---:|---:|---:|"]
    lines += [f"| {p.memory:g} | {p.fitness:+.4f} | {p.id} |" for p in front]
    return "\n".join(lines) + "\n"



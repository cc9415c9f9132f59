"""``symopt report RUN``: PNG plots and a short markdown summary of a run directory (:mod:`symopt.tools.report`)."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Sequence

from symopt.tools.compare import DEFAULT_LRS
from symopt.tools.inspect_run import entry_program
from symopt.tools.report import (
    Point,
    curve_tasks,
    first_stage,
    loss_curves,
    pareto_front,
    plot_curves,
    plot_fitness,
    plot_meta_validation,
    plot_pareto,
    points,
    search_grid,
    search_records,
    summary,
)
from symopt.storage.run_dir import LOG_NAME, HallOfFame, RunError, read_run
from symopt.config.space import MAX_STEPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `symopt search` (holds evaluations.jsonl)")
    parser.add_argument("-o", "--out", metavar="DIR",
                        help="where to write the PNGs and report.md (default: RUN/report)")
    parser.add_argument("--tasks", nargs="+", metavar="T",
                        help="proxy tasks for the loss curves (default: the run's validation tasks)")
    parser.add_argument("--rank", type=int, default=1, help="hall-of-fame entry whose loss curves to plot (default 1)")
    parser.add_argument("--steps", type=int, help="training steps for the loss curves (default: each task's own)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the loss-curve training runs (default 0)")
    parser.add_argument("--lrs", type=float, nargs="+",
                        help="learning-rate grid for the loss curves, as factors of each task's AdamW rate; each "
                             "optimizer is drawn at its best (default: the run's search grid, else 0.1 0.3 1 3 10; "
                             "--lrs 1: no tuning)")


def _hall_points(hof: HallOfFame | None, pts: Sequence[Point]) -> list[Point]:
    by_id = {p.id: p for p in pts}
    return [by_id[e.id] for e in (hof.entries if hof else []) if e.id in by_id]


def main(args: argparse.Namespace) -> int:
    try:
        run = read_run(args.run)
        rank = getattr(args, "rank", 1)
        entries = run.hall_of_fame.entries if run.hall_of_fame else []
        winner = entry_program(run.hall_of_fame, rank, args.run, simplified=False) if entries else None
        stage = first_stage(run)
        records = search_records(run.records, stage)
        if not records:
            raise RunError(f"{run.path / LOG_NAME}: no record of the search stage {stage!r} "
                           f"(the first stage in config.json); was the run's config.json replaced?")
        steps = getattr(args, "steps", None)
        if steps is not None and not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"--steps {steps}: give 1 to {MAX_STEPS:,} training steps per task (a stage's limit)")
        tasks = getattr(args, "tasks", None) or list(run.config.validation if run.config else ())
        proxy, toys = curve_tasks(tasks)
    except (RunError, ValueError) as e:
        print(f"symopt report: {e}", file=sys.stderr)
        return 1
    out = pathlib.Path(getattr(args, "out", None) or run.path / "report")
    out.mkdir(parents=True, exist_ok=True)
    notes, written = [], []

    plot_fitness(records, stage, out / "fitness.png")
    written.append(out / "fitness.png")
    if run.meta_validation:
        plot_meta_validation(run.meta_validation, list(run.meta_validation[-1].best), out / "meta_validation.png")
        written.append(out / "meta_validation.png")

    if run.hall_of_fame is None:
        notes.append(f"no hall_of_fame.json in {run.path} (written by `symopt search --run-dir`): "
                     "loss curves skipped")
    elif winner is None:
        notes.append("the hall of fame is empty: loss curves skipped")
    elif toys:
        notes.append(f"toy tasks have no loss curves: skipped {', '.join(toys)}")
    if winner is not None and not proxy:
        notes.append("no proxy task to train on: loss curves skipped (pass --tasks, e.g. --tasks quadratic_illcond)")
    if winner is not None and proxy:
        print(f"training rank {rank}, AdamW and Lion on {', '.join(proxy)} ...", flush=True)
        lrs = tuple(getattr(args, "lrs", None) or search_grid(run) or DEFAULT_LRS)
        curves = loss_curves(winner, proxy, steps, getattr(args, "seed", 0), lrs)
        plot_curves(curves, rank, out / "curves.png", tuned=len(lrs) > 1)
        written.append(out / "curves.png")

    pts = points(records)  # not empty: the search stage has records
    front = pareto_front(pts)
    plot_pareto(pts, front, _hall_points(run.hall_of_fame, pts), stage, out / "pareto.png")
    written.append(out / "pareto.png")

    winner_text = None
    if winner is not None:
        entry = entries[rank - 1]
        winner_text = str(entry.simplified or entry.program)
    (out / "report.md").write_text(summary(written, winner_text, rank, front, notes), encoding="utf-8")
    for n in notes:
        print(f"note: {n}")
    for p in written + [out / "report.md"]:
        print(f"wrote {p}")
    return 0

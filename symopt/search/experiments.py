"""Does the search search? The figures of the search issue, one sub-command each.

    python -m symopt.search.experiments quick [--budget 2000] [--seed 0]
        From AdamW on search_spaces/quick.toml, serially: the best fitness on the
        search tasks, the hall of fame through the funnel and on the validation
        tasks, the cache hit rate and the share of dead statements.
    python -m symopt.search.experiments momentum [--seeds 0 1 2 3 4] [--budget 300] [--tasks T ...]
        From SGD on the quick space and tasks: in how many seeds the search
        finds momentum (an EMA of the gradient in the update) within the budget.

Add ``--toy`` to run either on the NumPy toy tasks instead (seconds, no JAX).
Each writes ``summary.json`` (and the evaluation log) under ``--out``
(default ``runs/experiments/NAME``) and prints a report.

Momentum (:func:`momentum_found`) is an EMA of the gradient in a state slot,
``s <- a * s + b * g`` with 0 < a < 1 (:func:`ema_slots`, on the SymPy form),
that moves the update along the gradient. The second part is judged by
behaviour, not by text: :func:`has_momentum` runs the
program two steps from a zero state with gradients ``+d`` then ``g2`` and
``-d`` then ``g2``; the update of the second step moves with ``d`` (positive
correlation) only if a state slot carried the first gradient into it. A
second-moment accumulator alone (``v`` from ``g * g``) cannot do that, as
``(+d)^2 = (-d)^2``. "Moves with" means a correlation above 0.1 between the
change of the update and ``d`` over 4,096 entries (Lion's sign of a 0.99-EMA
passes with about 0.3; chance correlations are about 0.016).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

import numpy as np

from symopt.programs.execute import run
from symopt.programs.functions import FlatSpace
from symopt.programs.program import Program
from symopt.search.campaign import search
from symopt.search.space import load


def has_momentum(program: Program, threshold: float = 0.1) -> bool:
    """Whether the update carries the previous gradient forward, in its direction (see module docstring)."""
    rng = np.random.default_rng(0)
    n = 4096  # many independent entries: a chance correlation is about 1/64, far below the threshold
    d, g2, w = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    space = FlatSpace(np)
    roles = {r: program.arg_for(r) for r in ("weight", "grad", "lr", "step")}

    def second_update(first_grad):
        state = {s: np.zeros(n) for s in program.state_args}
        update = None
        for t, g in ((1.0, first_grad), (2.0, g2)):
            inputs = dict(state)
            for role, value in (("weight", w), ("grad", g), ("lr", np.float64(0.01)), ("step", np.float64(t))):
                if roles[role]:
                    inputs[roles[role]] = value
            update, *new = run(program, space, inputs)
            state = {s: np.broadcast_to(np.asarray(v, np.float64), (n,)) for s, v in zip(program.state_args, new)}
        return np.broadcast_to(np.asarray(update, np.float64), (n,))

    with np.errstate(all="ignore"):
        diff = second_update(d) - second_update(-d)
    if not np.all(np.isfinite(diff)) or not np.any(diff):
        return False
    return float(diff @ d / (np.linalg.norm(diff) * np.linalg.norm(d))) > threshold


def ema_slots(program: Program) -> list[str]:
    """Live state slots that hold an EMA of the gradient: ``s <- a * s + b * g``, constants 0 < a < 1, b != 0."""
    import sympy as sp

    from symopt.symbolic.simplify import live_states, to_sympy_outputs

    grad = program.arg_for("grad")
    if grad is None:
        return []
    outputs = to_sympy_outputs(program, guard="value")
    found = []
    for slot in live_states(program):
        expr = sp.expand(outputs[slot])
        s, g = sp.Symbol(slot, real=True), sp.Symbol(grad, real=True)
        a, b = expr.coeff(s), expr.coeff(g)
        if (a.is_number and b.is_number and sp.simplify(expr - a * s - b * g) == 0
                and 0 < float(a) < 1 and float(b) != 0):
            found.append(slot)
    return found


def momentum_found(program: Program) -> bool:
    """Momentum as the issue means it: an EMA of the gradient (:func:`ema_slots`) that moves the update
    in the gradient's direction (:func:`has_momentum`)."""
    return bool(ema_slots(program)) and has_momentum(program)


def _toy(config):
    """The same campaign on the NumPy toy tasks (for a fast look without JAX)."""
    campaign = dataclasses.replace(
        config.campaign,
        stages=(dataclasses.replace(config.campaign.stages[0], name="toy", tasks=("toy_quadratic", "toy_quadratic_noisy")),
                dataclasses.replace(config.campaign.stages[-1], name="toy_large", tasks=("toy_quadratic_large",))),
        validation=("toy_quadratic_large",))
    return dataclasses.replace(config, campaign=campaign)


def _out(args, name: str) -> pathlib.Path:
    out = pathlib.Path(args.out or pathlib.Path("runs", "experiments", name + ("-toy" if args.toy else "")))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def quick(args) -> dict:
    """From AdamW on quick.toml: best fitness on the search tasks, and whether it holds on validation."""
    config = load(args.config)
    if args.toy:
        config = _toy(config)
    out = _out(args, "quick")
    log = out / f"seed{args.seed}"
    if (log / "evaluations.jsonl").exists():
        (log / "evaluations.jsonl").unlink()
    print(f"load average before: {_load_avg()}", flush=True)
    c = search(config, budget=args.budget, seed=args.seed, run_dir=log)
    stats = c.stats.as_dict()
    first = c.config.campaign.stages[0].name or "stage1"
    summary = {
        "experiment": "quick", "config": str(args.config), "seed": args.seed, "budget": c.config.campaign.budget,
        "seconds": c.seconds, "load_average_after": _load_avg(), "stats": stats,
        "start": {"fitness": c.reference.fitness, "validation": c.reference.validation,
                  "program": str(c.reference.simplified)},
        "best_search_fitness": c.best.fitness, "best_search_id": c.best.id,
        "hall_of_fame": [e.as_json() for e in c.hall_of_fame],
        "momentum_in_best": momentum_found(c.best.program),
    }
    (out / f"summary-seed{args.seed}.json").write_text(json.dumps(summary, indent=2))
    print(c.summary())
    print(f"\nbest on the search tasks ({first}): {c.best.fitness:+.4f} (start {c.reference.fitness[first]:+.4f}); "
          f"{stats['evaluated']} trained in {c.seconds:.0f} s; cache hit rate {stats['cache_hit_rate']:.1%} "
          f"of {stats['children']} children; dead statements {stats['dead_fraction']:.1%}")
    return summary


def momentum(args) -> dict:
    """From SGD: does the search find momentum within the budget, per seed."""
    config = load(args.config)
    first = config.campaign.stages[0]
    if args.tasks:
        first = dataclasses.replace(first, tasks=tuple(args.tasks))
    config = dataclasses.replace(config, campaign=dataclasses.replace(
        config.campaign, start="sgd", stages=(first,), validation=(), hall_of_fame=1))
    if args.toy:
        config = _toy(config)
        config = dataclasses.replace(config, campaign=dataclasses.replace(
            config.campaign, stages=config.campaign.stages[:1], validation=()))
    out = _out(args, "momentum")
    print(f"load average before: {_load_avg()}", flush=True)
    rows = []
    for seed in args.seeds:
        (out / f"seed{seed}" / "evaluations.jsonl").unlink(missing_ok=True)  # a fresh run each time, as quick()
        c = search(config, budget=args.budget, seed=seed, run_dir=out / f"seed{seed}")
        start = c.state.start.fitness
        first = None
        best_so_far = -np.inf
        trained = 0
        for e in c.history:  # when the best program so far first holds momentum (counted in trainings)
            trained += not e.cached
            if e.fitness > best_so_far:
                best_so_far = e.fitness
                program = c.state.records[e.cached_from if e.cached else e.id].program
                if first is None and momentum_found(program):
                    first = trained
        row = {"seed": seed, "start_fitness": start, "best_fitness": c.best.fitness,
               "best_has_momentum": momentum_found(c.best.program),
               "best_moves_with_past_gradients": has_momentum(c.best.program),
               "first_best_with_momentum_at_evaluation": first, "seconds": c.seconds,
               "best_program": str(c.hall_of_fame[0].simplified) if c.hall_of_fame else str(c.best.program),
               "stats": c.stats.as_dict()}
        rows.append(row)
        print(f"seed {seed}: best {row['best_fitness']:+.3f} (SGD {start:+.3f}), momentum in best: "
              f"{row['best_has_momentum']} (update moves with past gradients: "
              f"{row['best_moves_with_past_gradients']}), best first had momentum at evaluation {first}, "
              f"{c.seconds:.0f} s", flush=True)
        print("    " + row["best_program"].replace("\n", "\n    "), flush=True)
    found = sum(r["best_has_momentum"] for r in rows)
    summary = {"experiment": "momentum", "budget": args.budget, "seeds": list(args.seeds), "found": found,
               "tasks": list(config.campaign.stages[0].tasks),
               "load_average_after": _load_avg(), "runs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nmomentum in the best program after {args.budget} trained candidates: {found} of {len(rows)} seeds")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symopt.search.experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    for name, fn, budget in (("quick", quick, 2000), ("momentum", momentum, 300)):
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0])
        p.add_argument("--config", default="quick", help="search configuration (default: quick)")
        p.add_argument("--budget", type=int, default=budget, help=f"trained candidates (default: {budget})")
        p.add_argument("--out", default=None, help="output folder (default: runs/experiments/NAME)")
        p.add_argument("--toy", action="store_true", help="NumPy toy tasks instead of the proxy tasks")
        if name == "quick":
            p.add_argument("--seed", type=int, default=0)
        else:
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
            p.add_argument("--tasks", nargs="+", default=None, help="search tasks (default: the config's first stage)")
        p.set_defaults(func=fn)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    args.func(args)
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

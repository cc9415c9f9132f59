"""``symopt compare A B ... --tasks T1 T2``: optimizers side by side, each at its best learning rate.

Each optimizer is a baseline name (``symopt.baselines.names()``), a program
file (``def train(...): ... return update, ...``) or ``RUN:N`` (rank N of a
run's hall of fame, simplified). On every task it trains at the task's AdamW
learning rate times each factor of ``--lrs`` (default 0.1 0.3 1 3 10), averaged
over ``--seeds``, and keeps the factor with the lowest final eval loss.

Programs train on the compile-once evaluator (:func:`symopt.evaluate`), all
factors of a seed in one call (its ``grid``), on the task's schedule at the
factor times its peak, exactly as
``proxy_tasks.train(task, to_optax(program, task.schedule(c)))`` would;
optax-level baselines (adafactor) train with ``proxy_tasks.training_run`` and
their ``to_optax`` (one compilation per task and learning rate).

The last column is the mean over tasks of log(L_AdamW / L), the optimizer at
its chosen factor and AdamW at its own best factor of the same grid (as the
study judges rules: each at its best); 0 is as good as tuned AdamW. Against
AdamW at the same factor the log ratio would be undefined wherever AdamW
diverges at a rate the other rule prefers (Muon's are 3 to 10 times AdamW's).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import proxy_tasks
from proxy_tasks import training_run
from symopt.evaluation import Grid, evaluate
from symopt.evaluation import fitness as fit
from symopt.evaluation.evaluator import instructions, reference, references
from symopt.programs import baselines
from symopt.programs.errors import ProgramError
from symopt.programs.parser import parse, read_text
from symopt.programs.program import Assign, Call, Const, Program, Var
from symopt.campaign.campaign import programs_functions
from symopt.tools.inspect_run import entry_program
from symopt.storage.run_dir import RunError, read_hall_of_fame
from symopt.config.space import MAX_ITEMS, MAX_STEPS

DEFAULT_LRS = (0.1, 0.3, 1.0, 3.0, 10.0)


class CompareError(ValueError):
    """A bad optimizer, task or option."""


@dataclasses.dataclass
class Cell:
    """One optimizer on one task: mean final eval loss and fitness per lr factor, and the chosen factor."""

    losses: dict[float, float]  # factor -> mean eval loss over seeds (inf when any seed diverged)
    scores: dict[float, float]  # factor -> mean score against AdamW over seeds
    best: float  # the chosen factor
    lr: float  # the chosen learning rate
    adamw: float  # AdamW's mean eval loss at its best factor of the same grid and seeds (inf if it always diverged)

    @property
    def score(self) -> float:
        """log(L_AdamW / L): this optimizer at its chosen factor against AdamW at its own best."""
        return fit.score(self.losses[self.best], self.adamw)


def _adamw_best(task, seeds, steps, factors, functions) -> float:
    """AdamW's mean final eval loss over ``seeds`` at its best factor (the references the evaluator caches)."""
    n = task.steps if steps is None else int(steps)
    refs = references(task, tuple(seeds), n, tuple(factors), ops=instructions(functions))
    means = [sum(refs[f, s] for s in seeds) / len(seeds) for f in factors]
    return min((m for m in means if math.isfinite(m)), default=math.inf)


def resolve(spec: str):
    """(label, Program or OptaxBaseline) for a baseline name, program file or RUN:N. Raises CompareError."""
    if spec.strip().lower() in baselines.names():
        return spec.strip().lower(), baselines.get(spec)
    run, _, rank = spec.rpartition(":")
    if run and rank.isdigit() and pathlib.Path(run).is_dir():
        try:
            return spec, entry_program(read_hall_of_fame(run), int(rank), run)
        except RunError as e:
            raise CompareError(str(e)) from None
    path = pathlib.Path(spec)
    if path.is_file():
        try:
            return path.stem, parse(read_text(path), source=str(path))
        except OSError as e:
            raise CompareError(f"cannot read {spec!r}: {e.strerror}") from None
        except ProgramError as e:
            raise CompareError(f"{spec}: not a program: {e}") from None
        except ValueError as e:  # not UTF-8
            raise CompareError(str(e)) from None
    try:
        baselines.get(spec)
    except ValueError as e:
        raise CompareError(f"{spec!r} is not a baseline name, a program file or RUN:N "
                           f"({str(e)[0].lower() + str(e)[1:]})") from None
    raise CompareError(f"{spec!r} is not a baseline name, a program file or RUN:N")  # pragma: no cover


def scale_lr(program, factor: float):
    """The program trained at ``factor`` times the learning rate it is given."""
    if factor == 1.0:
        return program
    lr = program.arg_for("lr")
    if lr is not None:
        body = (Assign(lr, Call("*", (Var(lr), Const(float(factor))))),) + tuple(program.body)
        scaled = dataclasses.replace(program, body=body)
    else:
        returns = (Call("*", (program.returns[0], Const(float(factor)))),) + tuple(program.returns[1:])
        scaled = dataclasses.replace(program, returns=returns)
    return parse(str(scaled))


def _cell(losses: dict, scores: dict, task, seeds, steps, functions) -> Cell:
    best = min(losses, key=lambda f: (losses[f], -scores[f]))  # ties (all diverged): the better score, then order
    return Cell(losses, scores, best, best * task.learning_rate,
                _adamw_best(task, seeds, steps, list(losses), functions))


def _program_cells(program, tasks, seeds, steps, factors, functions) -> list[Cell]:
    cells = []
    for task in tasks:
        [r] = evaluate([program], [task], seeds=seeds, steps=steps, grid=Grid(tuple(factors)), functions=functions)
        losses, scores = {}, {}
        for f in factors:
            runs = [run for run in r.runs if run.factor == f]
            evals = [run.eval_loss for run in runs]
            losses[f] = float(sum(evals) / len(evals)) if all(math.isfinite(x) for x in evals) else math.inf
            scores[f] = float(sum(run.score for run in runs) / len(runs))
        cells.append(_cell(losses, scores, task, seeds, steps, functions))
    return cells


def _optax_cells(baseline, tasks, seeds, steps, factors, functions) -> list[Cell]:
    import jax
    import numpy as np

    cells = []
    for task in tasks:
        n = task.steps if steps is None else int(steps)
        losses, scores = {}, {}
        for f in factors:
            run = training_run(task, baseline.to_optax(task.schedule(f, n)), n)
            evals, task_scores = [], []
            for seed in seeds:
                curve, eval_loss = run(jax.random.PRNGKey(seed))
                curve, eval_loss = np.asarray(curve), float(eval_loss)
                if fit.diverged(curve, float(curve[0])) or not math.isfinite(eval_loss):
                    evals.append(math.inf)
                    task_scores.append(-math.inf)
                else:
                    evals.append(eval_loss)
                    task_scores.append(fit.score(eval_loss, reference(task, seed, n, f, ops=instructions(functions))))
            losses[f] = float(np.mean(evals))
            scores[f] = float(np.mean(task_scores))
        cells.append(_cell(losses, scores, task, seeds, steps, functions))
    return cells


def compare(specs, tasks, seeds=(0,), steps=None, lrs=DEFAULT_LRS) -> tuple[list[str], list, dict[str, list[Cell]]]:
    """(labels, Task objects, label -> one Cell per task). Raises CompareError on bad input."""
    if not specs:
        raise CompareError("no optimizers to compare")
    factors = [float(f) for f in lrs]
    if not factors or any(not math.isfinite(f) or f <= 0 for f in factors):
        raise CompareError(f"--lrs: learning-rate factors must be positive numbers, got {list(lrs)}")
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise CompareError(f"--steps {steps}: give 1 to {MAX_STEPS:,} training steps per task (a stage's limit)")
    if not seeds or len(seeds) > MAX_ITEMS or len(factors) > MAX_ITEMS:
        raise CompareError(f"give 1 to {MAX_ITEMS} seeds and learning-rate factors, got {len(seeds)} and "
                           f"{len(factors)}")
    resolved = [resolve(s) for s in specs]  # every name is checked before anything trains
    task_objs = []
    for t in tasks:
        try:
            task_objs.append(proxy_tasks.get(t))
            if proxy_tasks.is_import_path(t):
                proxy_tasks.require_trainable(t)
        except ValueError as e:
            raise CompareError(f"--tasks: {e}") from None
    # one instruction set for all of them (rounded up: symopt.campaign.campaign.executable_functions)
    functions = programs_functions(opt for _, opt in resolved if isinstance(opt, Program))
    labels, cells = [], {}
    for label, opt in resolved:
        while label in cells:
            label += "'"
        labels.append(label)
        train = _program_cells if isinstance(opt, Program) else _optax_cells
        cells[label] = train(opt, task_objs, tuple(seeds), steps, factors, functions)
    return labels, task_objs, cells


def table(labels, tasks, cells) -> str:
    """Final eval loss at the best lr (and that lr) per task, and the mean log ratio against AdamW at its best."""
    header = ["optimizer"] + [t.name for t in tasks] + ["vs AdamW at its best"]
    rows = []
    for label in labels:
        row = [label]
        for c in cells[label]:
            loss = c.losses[c.best]
            row.append(("diverged" if not math.isfinite(loss) else f"{loss:.4g}") + f" @ lr {c.lr:.3g}")
        fitness = sum(c.score for c in cells[label]) / len(cells[label])
        row.append(f"{fitness:+.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, ["-" * w for w in widths]] + rows]
    return "\n".join(lines)



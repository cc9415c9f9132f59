"""The table of proxy tasks: name -> (tag, factory, sizes, measured cost), built on first use.

Every validation task NAME is also registered as NAME_const: the same task (model, data, steps) trained
at a constant rate instead of warm-up + cosine decay, AdamW's peak tuned for it, so that validation
judges a rule under both schedules. `names("validation")` lists both; `names("validation", schedule="cosine")` the
scheduled ones alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Callable

from proxy_tasks import imported, language, synthetic, toy, vision
from proxy_tasks.task import SCHEDULES, Task

TAGS = ("search", "validation", "toy")
CONSTANT_SUFFIX = "_const"
"""Name suffix of a validation task's constant-rate variant."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """How to build one task, and what one AdamW run of it cost on one CPU core."""

    tag: str
    factory: Callable[..., Task | toy.ToyTask]
    cost: tuple[float, float] | None  # (run s, compile s) of one AdamW `train` at default size; None: a toy task
    kwargs: dict = dataclasses.field(default_factory=dict)  # sizes passed to the factory; a variant: Task fields
    schedule: str = "cosine"  # the task's lr_schedule (proxy_tasks.task.SCHEDULES)
    variant_of: str | None = None  # a variant: this task (built once) with another schedule, kwargs its Task fields


# Learning rates are AdamW's peak under the task's schedule (proxy_tasks.task), tuned so that AdamW's best
# factor on a grid 0.5 .. 13 (0.25 .. 13 since the constant-rate variants, seeds 0-2) is inside the search's
# grid 1/3 .. 3 (`python -m proxy_tasks.measure --tune` prints the sweep).
# cost: (run s, compile s) of one AdamW `train` at default size, pinned to one core with
# `taskset -c 0 python -m proxy_tasks.measure` on the otherwise idle 2-core development machine
# (2026-11-30; earlier passes on a shared machine varied up to 2x). The package docstring's table states them too.
ENTRIES: dict[str, Entry] = {
    "quadratic_illcond": Entry("search", synthetic.quadratic_illcond, (0.00023, 0.47), kwargs=dict(learning_rate=4.0)),
    "quadratic_noisy": Entry("search", synthetic.quadratic_noisy, (0.00044, 0.66), kwargs=dict(learning_rate=0.1)),
    "rosenbrock": Entry("search", synthetic.rosenbrock, (8.7e-05, 0.31)),
    "logreg_synthetic": Entry("search", synthetic.logreg_synthetic, (0.00057, 0.8), kwargs=dict(learning_rate=0.06)),
    "mlp_digits": Entry("search", vision.mlp_digits, (0.0039, 1.2), kwargs=dict(learning_rate=0.05)),
    "autoencoder_digits": Entry("search", vision.autoencoder_digits, (0.0075, 1.3), kwargs=dict(learning_rate=0.05)),
    "lm_char": Entry("search", language.lm_char, (0.09, 3.1), kwargs=dict(learning_rate=0.01)),
    # lm_char's model for 50 steps: the search stage's language model (its scores rank held-out tasks).
    "lm_char_short": Entry("search", language.lm_char, (0.025, 3.6), kwargs=dict(steps=50, learning_rate=0.02)),
    # Funnel stages: larger versions for the candidates that lead on the small tasks.
    "mlp_digits_large": Entry("search", vision.mlp_digits, (0.22, 1.8), kwargs=dict(
        hidden=(256, 256), batch_size=128, steps=500, learning_rate=1e-2, noise=0.3)),
    "lm_char_large": Entry("search", language.lm_char, (0.57, 3.5), kwargs=dict(
        width=48, layers=2, heads=3, context=32, batch_size=12, steps=300, learning_rate=9e-3)),
    # Held out from the search: one model family each that the search never trains on, on data other than
    # the search stage's where possible (synthetic tables, regressions, a manifold, a grammar).
    "cnn_digits": Entry("validation", vision.cnn_digits, (0.026, 1.9), kwargs=dict(learning_rate=0.03)),
    "lstm_char": Entry("validation", language.lstm_char, (0.21, 2.1), kwargs=dict(learning_rate=0.06)),
    "matrix_completion": Entry("validation", synthetic.matrix_completion, (0.0012, 0.91),
                               kwargs=dict(learning_rate=0.2)),
    # cost of these five: measured 2026-12-07 on the shared machine, compile the least of 3, run the least of 10,
    # where mlp_digits took (0.0069, 1.6), lm_char (0.17, 4.6) and cnn_digits (0.041, 2.6): about 1.7x the runs and
    # 1.4x the compiles of the 2026-11-30 figures above.
    "tabular_mlp": Entry("validation", synthetic.tabular_mlp, (0.0099, 1.6), kwargs=dict(learning_rate=0.04)),
    "linreg_illcond": Entry("validation", synthetic.linreg_illcond, (0.012, 1.9), kwargs=dict(learning_rate=0.3)),
    "deep_linear": Entry("validation", synthetic.deep_linear, (0.013, 2.0), kwargs=dict(learning_rate=0.04)),
    "autoencoder_manifold": Entry("validation", synthetic.autoencoder_manifold, (0.029, 1.8),
                                  kwargs=dict(learning_rate=0.03)),
    "lm_grammar": Entry("validation", language.lm_grammar, (0.065, 4.1), kwargs=dict(learning_rate=0.015)),
    # NumPy quadratics for tests and debugging, trained by symopt.evaluation.toy (milliseconds, no JAX).
    "toy_quadratic": Entry("toy", toy.quadratic, None),
    "toy_quadratic_noisy": Entry("toy", toy.quadratic, None, kwargs=dict(noise=0.5, learning_rate=0.05)),
    "toy_quadratic_large": Entry("toy", toy.quadratic, None, kwargs=dict(
        dim=64, condition=1000.0, steps=100, segments=(16, 16, 32))),
}
# Each validation task again at a constant rate, with AdamW's peak tuned for it as above (a constant rate's best
# is lower: nothing decays the noise at the end). A run costs what the scheduled one does (same computation).
CONSTANT_RATES = {"cnn_digits": 0.015, "lstm_char": 0.03, "matrix_completion": 0.025, "tabular_mlp": 0.04,
                  "linreg_illcond": 0.06, "deep_linear": 0.012, "autoencoder_manifold": 0.005, "lm_grammar": 0.008}
ENTRIES |= {name + CONSTANT_SUFFIX: dataclasses.replace(ENTRIES[name], schedule="constant", variant_of=name,
                                                        kwargs=dict(learning_rate=lr))
            for name, lr in CONSTANT_RATES.items()}


def names(tag: str | None = None, schedule: str | None = None) -> list[str]:
    """Sorted task names, all of them or those with `tag` ("search", "validation" or "toy") and learning-rate
    `schedule` ("cosine" or "constant"). `names("validation")` is the whole validation set, both schedules."""
    if tag is not None and tag not in TAGS:
        raise ValueError(f"unknown task tag {tag!r}: use one of {', '.join(TAGS)} or None")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)} or None")
    return sorted(n for n, e in ENTRIES.items() if (tag is None or e.tag == tag)
                  and (schedule is None or e.schedule == schedule))


def tag(name: str) -> str | None:
    """The tag of task `name` ("search", "validation" or "toy"), or None for an unknown name."""
    entry = ENTRIES.get(name)
    return entry.tag if entry else None


@functools.cache
def get(name: str) -> Task:
    """Build the task `name` (once; later calls return the same immutable Task): a registered name, or an
    import path "package.module:attr" of the user's own task (proxy_tasks.imported)."""
    if imported.is_import_path(name):
        return imported.load(name)
    entry = ENTRIES.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, ENTRIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown proxy task {name!r}{hint}; known tasks: {', '.join(names())}")
    if entry.variant_of is not None:  # the same closures and data as the base task: only the rates differ
        base = get(entry.variant_of)
        return dataclasses.replace(base, name=name, lr_schedule=entry.schedule, **entry.kwargs,
                                   description=f"{base.description}; {entry.schedule} learning rate")
    task = entry.factory(name=name, tag=entry.tag, **entry.kwargs)
    if entry.cost is None:
        return task
    run_s, compile_s = entry.cost
    cost = f"AdamW run {run_s:.2g} s + compile {compile_s:.2g} s on 1 CPU core"
    return dataclasses.replace(task, description=f"{task.description}; {cost}")


@functools.cache
def check(name: str) -> str | None:
    """What keeps task `name` from being trained (a loss that is not a scalar, an AdamW reference that does
    not train), or None; one short real AdamW run, once per process. Raises ValueError as `get` does."""
    return imported.problem(get(name))


def require_trainable(name: str) -> None:
    """Raise ValueError naming the task and what keeps it from being trained (see `check`), if anything does."""
    problem = check(name)
    if problem:
        raise ValueError(f"task {name!r}: {problem}")

"""The table of proxy tasks: name -> (tag, factory, sizes, measured cost), built on first use."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Callable

from proxy_tasks import language, synthetic, vision
from proxy_tasks.task import Task

TAGS = ("search", "validation")


@dataclasses.dataclass(frozen=True)
class Entry:
    """How to build one task, and what one AdamW run of it cost on one CPU core."""

    tag: str
    factory: Callable[..., Task]
    kwargs: dict = dataclasses.field(default_factory=dict)
    cost: str = ""  # "run R s, compile C s": one `train` call, measured by proxy_tasks.measure


# Costs: taskset -c 0 python -m proxy_tasks.measure (median of 5 runs after compile).
ENTRIES: dict[str, Entry] = {
    "quadratic_illcond": Entry("search", synthetic.quadratic_illcond),
    "quadratic_noisy": Entry("search", synthetic.quadratic_noisy),
    "rosenbrock": Entry("search", synthetic.rosenbrock),
    "logreg_synthetic": Entry("search", synthetic.logreg_synthetic),
    "mlp_digits": Entry("search", vision.mlp_digits),
    "autoencoder_digits": Entry("search", vision.autoencoder_digits),
    "lm_char": Entry("search", language.lm_char),
    # Funnel stages: larger versions for the candidates that lead on the small tasks.
    "mlp_digits_large": Entry("search", vision.mlp_digits,
                              dict(hidden=(256, 256), batch_size=128, steps=1000, learning_rate=1e-3)),
    "lm_char_large": Entry("search", language.lm_char,
                           dict(width=64, layers=2, heads=4, context=64, batch_size=32, steps=500,
                                learning_rate=3e-3)),
    # Held out from the search: one model family each that the search never trains.
    "cnn_digits": Entry("validation", vision.cnn_digits),
    "lstm_char": Entry("validation", language.lstm_char),
    "matrix_completion": Entry("validation", synthetic.matrix_completion),
}


def names(tag: str | None = None) -> list[str]:
    """Sorted task names, all of them or those with `tag` ("search" or "validation")."""
    if tag is not None and tag not in TAGS:
        raise ValueError(f"unknown task tag {tag!r}: use one of {', '.join(TAGS)} or None")
    return sorted(n for n, e in ENTRIES.items() if tag is None or e.tag == tag)


@functools.cache
def get(name: str) -> Task:
    """Build the task `name` (once; later calls return the same immutable Task)."""
    entry = ENTRIES.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, ENTRIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown proxy task {name!r}{hint}; known tasks: {', '.join(names())}")
    task = entry.factory(name=name, tag=entry.tag, **entry.kwargs)
    if entry.cost:
        task = dataclasses.replace(task, description=f"{task.description}; {entry.cost} (1 core)")
    return task

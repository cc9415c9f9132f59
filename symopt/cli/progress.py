"""What ``symopt search`` shows as it goes: a live line on a terminal, plain lines otherwise, or nothing.

The campaign knows nothing of the terminal: :func:`symopt.campaign.campaign.search` calls
``progress(state, replayed)`` after each training accepted on the search stage and ``on_check(point)``
after each funnel check (a point of the meta-validation curve). :class:`Progress` turns those calls
into output, and writes nothing else: the run directory is the same with it, without it (``--quiet``)
and on any terminal.

- On a terminal, one line redrawn in place (tqdm): trained of the budget, the best fitness so far on
  the search stage, candidates trained per second by this process, the time left at that rate, the
  cache hit rate and the workers alive; each funnel check is printed above it as it ends.
- Off a terminal (CI, a log file), a plain line at each tenth of the budget and one per funnel check.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence, TextIO

from tqdm import tqdm

from symopt.storage.records import CheckPoint

REFRESH_S = 0.2
"""Seconds between redraws of the live line."""

PLAIN_LINES = 10
"""Off a terminal, a line each time another 1/PLAIN_LINES of the budget is trained."""


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _duration(seconds: float | None) -> str:
    return "?" if seconds is None else tqdm.format_interval(seconds)


def _width(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def check_line(point: CheckPoint, stages: Sequence[str]) -> str:
    """One funnel check (a meta-validation point) as a line."""
    best = ", ".join(f"{s} {_signed(point.best.get(s))}" for s in stages)
    line = f"funnel check at {point.trained} trained: best {best}"
    if point.pick is not None or point.best_validation is not None:
        pick = "-" if point.pick is None else f"id {point.pick} {_signed(point.pick_validation)}"
        line += f"; validation: pick {pick}, best {_signed(point.best_validation)}"
    return line


class Progress:
    """The ``progress`` and ``on_check`` callbacks of one campaign, rendered on ``out``.

    Args:
        budget: the candidates the search stage trains.
        stages: the funnel's stage names, the search stage first.
        out: where to write (default: stdout).
        live: a redrawn line (default: when ``out`` is a terminal) or plain lines.
        workers: a function giving the workers alive (Ray), or None (serial).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, budget: int, stages: Sequence[str], out: TextIO | None = None, live: bool | None = None,
                 workers: Callable[[], int] | None = None, clock: Callable[[], float] = time.monotonic):
        self.budget, self.stages, self.workers, self.clock = budget, list(stages), workers, clock
        self.out = sys.stdout if out is None else out
        self.live = self.out.isatty() if live is None else live
        self.t0 = clock()
        self.trained = 0
        self._tenth = 0
        self._bar = None
        if self.live:  # a terminal of unknown size (0 x 0: a bare pty) gets the whole line, on a screen of 24 rows
            shape = {} if _width(self.out) > 0 else {"ncols": 1000, "nrows": 24}
            self._bar = tqdm(total=budget, file=self.out, bar_format="trained {n}/{total}  {desc}",
                             mininterval=REFRESH_S, miniters=1, leave=True, **shape)

    def status(self, state, replayed: int) -> str:
        """Best so far, candidates/s, time left, cache hits and workers, as the line after ``trained N/B``."""
        s = state.stats
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = max(s.evaluated - replayed, 0) / elapsed  # trained by this process (the rest replayed from the log)
        left = max(self.budget - s.evaluated, 0) / rate if rate > 0 else None
        alive = self.workers() if self.workers else "serial"
        return (f"best {_signed(state.best.fitness)}  {rate:.1f} candidates/s  {_duration(left)} left"
                + (f"  ({replayed} replayed)" if replayed else "")
                + f"  cache hits {s.cache_hit_rate:.0%}  workers {alive}")

    def __call__(self, state, replayed: int) -> None:
        """``progress(state, replayed)``: after each training accepted on the search stage."""
        n = state.stats.evaluated
        if self._bar is not None:
            self._bar.set_description_str(self.status(state, replayed), refresh=False)
            self._bar.update(n - self._bar.n)
        else:
            tenth = min(n * PLAIN_LINES // max(self.budget, 1), PLAIN_LINES)
            if tenth > self._tenth:
                self._tenth = tenth
                self.out.write(f"trained {n}/{self.budget}  {self.status(state, replayed)}\n")
                self.out.flush()
        self.trained = n

    def check(self, point: CheckPoint) -> None:
        """``on_check(point)``: a funnel check has ended."""
        line = check_line(point, self.stages)
        if self._bar is not None:
            self._bar.write(line, file=self.out)
        else:
            self.out.write(line + "\n")
            self.out.flush()

    def close(self) -> None:
        """The live line stays as last drawn, and the output goes on below it."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

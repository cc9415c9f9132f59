"""Funnel selection: the leaders of each stage move on to bigger tasks; validation ranks the survivors.

Stage 1 is the search itself: every trained candidate has a stage-1 fitness.
For each later stage, the ``promote`` best candidates of the stage before (by
that stage's fitness, ties to the older candidate) are trained on the stage's
tasks; from every stage after the first, only candidates that beat AdamW there
(fitness above 0) move on, or into the hall of fame (the best of the others only
when none does). Candidates whose fitness on a stage is the same, or within
``SAME_FITNESS``, trained alike on its tasks (programs that differ only where
training never goes: ``max(lr, v)`` with ``v`` far below ``lr``, or an added
constant of 1e-10), so only the best of them moves on (the oldest on a tie): the
funnel's places and the hall of fame go to different behaviours. A campaign runs
the funnel again at each check on all its entries, keeping their scores: a
candidate that an earlier check promoted to a stage stays in the running there,
so leaders found later on the search stage cannot push an earlier one that did
better on the later stages out of the hall of fame. The ``keep``
best of the last stage form the hall of fame, which is then ranked by its
fitness on validation tasks the search never optimised on (Lion's funnel
selection and meta-validation, docs/design.md §4).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from symopt.evaluation.fitness import fitness_of
from symopt.programs.program import Program

StageEvaluate = Callable[[Sequence[Program]], Sequence[float]]

SAME_FITNESS = 1e-5
"""Fitness values on one stage this close are one behaviour. Measured: a main-job campaign's rescore stage held
25 programs that differed by added constants near 1e-10 and scored within 3e-6 of each other; they took the funnel's
places and its whole hall of fame. The score cannot tell 1e-5 apart (AdamW's own score moves by 0.009 when its rate
moves within a grid step: study part h), so nothing it resolves is lost."""


@dataclasses.dataclass
class Entry:
    """A candidate going through the funnel: its fitness on each stage it reached, and on validation."""

    id: int
    program: Program
    fitness: dict[str, float]
    validation: float | None = None
    results: dict[str, Any] = dataclasses.field(default_factory=dict)

    def score(self, stage: str) -> float:
        return fitness_of(self.fitness.get(stage))


def leaders(entries: Sequence[Entry], stage: str, k: int) -> list[Entry]:
    """The ``k`` best entries on ``stage``, one per behaviour (fitness within ``SAME_FITNESS`` of a better or
    older one's: left out), only those scored there."""
    out: list[Entry] = []
    for e in sorted((e for e in entries if stage in e.fitness), key=lambda e: (-e.score(stage), e.id)):
        if len(out) == k:
            break
        if not any(_same(e.score(stage), o.score(stage)) for o in out):
            out.append(e)
    return out


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= SAME_FITNESS


def _beating(entries: Sequence[Entry], stage: str, required: bool) -> Sequence[Entry]:
    """The entries that beat AdamW (fitness > 0) on ``stage`` when ``required`` and any do; else all."""
    if not required:
        return entries
    better = [e for e in entries if e.score(stage) > 0]
    return better or entries


def run(entries: Sequence[Entry], stages: Sequence[tuple[str, int, StageEvaluate]], keep: int,
        validate: StageEvaluate | None = None, first: str | None = None,
        on_result: Callable[[str, Entry, Any], None] | None = None) -> tuple[list[Entry], dict[str, list[Entry]]]:
    """Push ``entries`` (scored on the first stage) through the later ``stages``.

    Args:
        entries: candidates with ``fitness[first]`` set; a stage's or validation's fitness that
            an entry already has (from an earlier pass) is kept, not trained again.
        stages: ``(name, promote, evaluate)`` for each stage after the first;
            ``evaluate(programs)`` returns results (numbers or with ``.fitness``).
        keep: the hall-of-fame size.
        validate: scores programs on the validation tasks (None: no validation).
        first: the first stage's name (default: the first key of the first entry).
        on_result: called as ``on_result(stage, entry, result)`` after each training
            (``stage`` is ``"validation"`` for the validation tasks).

    Returns:
        (the hall of fame, best first: by validation fitness when ``validate`` is
        given, else by the last stage's; the entries that reached each stage).
    """
    entries = list(entries)
    if not entries:
        return [], {}
    first = current = first or next(iter(entries[0].fitness))
    reached = {current: list(entries)}
    for name, promote, evaluate in stages:
        moving = leaders(_beating(reached[current], current, current != first), current, promote)
        todo = [e for e in moving if name not in e.fitness]  # scored there before (an earlier check): kept
        results = evaluate([e.program for e in todo]) if todo else []
        for e, r in zip(todo, results):
            e.fitness[name] = fitness_of(r)
            e.results[name] = r
            if on_result:
                on_result(name, e, r)
        promoted = {e.id for e in moving}  # and those an earlier check promoted here: they stay in the running
        reached[name] = moving + [e for e in entries if name in e.fitness and e.id not in promoted]
        current = name
    hall = leaders(_beating(reached[current], current, current != first), current, keep)
    if validate is not None and hall:
        todo = [e for e in hall if e.validation is None]
        for e, r in zip(todo, validate([e.program for e in todo]) if todo else []):
            e.validation = fitness_of(r)
            e.results["validation"] = r
            if on_result:
                on_result("validation", e, r)
        hall.sort(key=lambda e: (-(e.validation if e.validation is not None else -math.inf), -e.score(current), e.id))
    return hall, reached

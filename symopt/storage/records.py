"""The typed records of a run directory's files: what a campaign writes (``as_json``) and what the readers of
:mod:`symopt.storage.run_dir` return, programs parsed once by the reader's check.

    evaluations.jsonl    one :class:`LogRecord` a line
    lineage.jsonl        one :class:`symopt.evolve.evolution.Event` a line (the evolution's own record)
    config.json          :class:`RunConfig` (the resolved :class:`~symopt.config.space.Config` as JSON)
    hall_of_fame.json    :class:`HallOfFame` of :class:`HallOfFameEntry`
    meta_validation.json a list of :class:`CheckPoint`
    derived_rankN.json   :class:`Derived` (what ``symopt export --derived`` needs of a derivation)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from symopt.config.space import Config, from_fields
from symopt.evaluation.fitness import fitness_of
from symopt.programs.program import Program


@dataclasses.dataclass(frozen=True)
class LogRecord:
    """One training in evaluations.jsonl: its id, parent, program, fitness as logged (None: diverged), stage,
    and on the search stage how many candidates had been proposed (``proposed``, see symopt.evolve.steady)."""

    id: int
    parent: int | None
    program: Program
    fitness: float | None
    stage: str
    proposed: int | None = None

    @property
    def score(self) -> float:
        """The fitness as the search counts it: a logged null is DIVERGED."""
        return fitness_of(self.fitness)

    def as_json(self) -> dict:
        record = {"id": self.id, "parent": self.parent, "program": str(self.program), "fitness": self.fitness,
                  "stage": self.stage}
        if self.proposed is not None:
            record["proposed"] = self.proposed
        return record


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """config.json as read back: the resolved configuration as written (``data``: a resume compares it whole),
    and the parts the readers use, checked: the budget, the stages (objects), the validation tasks."""

    data: dict
    budget: int | None = None
    stages: tuple[dict, ...] = ()
    validation: tuple[str, ...] = ()

    def resolved(self, source: str) -> Config:
        """The :class:`~symopt.config.space.Config` that wrote it, checked as a configuration file is."""
        return from_fields(self.data, source)


@dataclasses.dataclass
class HallOfFameEntry:
    """A program that survived the funnel: as found, simplified, and its fitness on each stage; what a campaign
    writes to hall_of_fame.json (:meth:`as_json`) and :func:`~symopt.storage.run_dir.read_hall_of_fame` reads
    back (``id`` and ``simplified`` are None where a file leaves them out)."""

    id: int | None
    program: Program
    simplified: Program | None
    fitness: dict[str, float]
    validation: float | None

    def as_json(self) -> dict:
        return {"id": self.id, "program": str(self.program),
                "simplified": None if self.simplified is None else str(self.simplified),
                "fitness": self.fitness, "validation": self.validation}


@dataclasses.dataclass(frozen=True)
class HallOfFame:
    """hall_of_fame.json as read back: the entries by rank, the start program's (``reference``), the
    campaign's statistics, its wall seconds and the trainings it replayed (None where the file has none)."""

    entries: list[HallOfFameEntry]
    reference: HallOfFameEntry | None = None
    stats: dict | None = None
    seconds: float | None = None
    replayed: int | None = None


CHECK_KEYS = ("trained", "pick", "pick_validation", "best_validation")
"""The keys of a meta-validation point that are not a stage's name."""


@dataclasses.dataclass(frozen=True)
class CheckPoint:
    """One point of the meta-validation curve (the Lion paper's), written after each funnel check: after
    ``trained`` trainings, the best fitness on each stage so far (``best``, by stage in funnel order), and on
    validation the funnel's pick (id and fitness) and the best of any candidate validated."""

    trained: int
    best: dict[str, float | None]
    pick: int | None = None
    pick_validation: float | None = None
    best_validation: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"trained": self.trained, **self.best, "pick": self.pick, "pick_validation": self.pick_validation,
                "best_validation": self.best_validation}

    @classmethod
    def from_json(cls, point: dict) -> CheckPoint:
        return cls(point["trained"], {k: v for k, v in point.items() if k not in CHECK_KEYS}, point.get("pick"),
                   point.get("pick_validation"), point.get("best_validation"))


@dataclasses.dataclass(frozen=True)
class Derived:
    """derived_rankN.json as ``symopt export --derived`` reads it: the program the derivation started from,
    the program it derived, and its steps as written (:meth:`symopt.tools.derive.Derivation.as_json`)."""

    start: Program
    derived: Program
    steps: list

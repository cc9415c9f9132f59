"""Which tasks rank held-out tasks as they do: candidates a campaign trained, scored task by task.

A search stage steers the search only as far as its scores order candidates the way unseen
tasks do. :func:`sample` draws candidates from a campaign's log among those selection acts on
(above the start on the search stage: the best ones and a spread of the rest);
:func:`correlations` gives, for each candidate score (a task's, a stage's), its Spearman
correlation with the held-out fitness, over all candidates and within each campaign.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Mapping, Sequence

import numpy as np

from symopt.storage.records import LogRecord
from symopt.storage.run_dir import LOG_NAME, read_log


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties get their mean rank); NaN when either side is constant."""
    def ranks(v):
        v = np.asarray(v, np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties: mean rank
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A program a campaign trained, with its logged fitness on the stage it was drawn from."""

    campaign: str
    id: int
    program: str
    fitness: float


def sample(run_dir: str | os.PathLike, stage: str, top: int = 8, spread: int = 8, seed: int = 0,
           above: float = 0.0) -> list[Candidate]:
    """Distinct programs of a campaign's log whose ``stage`` fitness exceeds ``above`` (the start's score):
    the ``top`` best and ``spread`` drawn at random (``seed``) from the rest, best first."""
    run_dir = pathlib.Path(run_dir)
    records, _ = read_log(run_dir / LOG_NAME)
    first: dict[str, LogRecord] = {}
    for r in records:
        if r.stage == stage and r.fitness is not None and r.fitness > above:
            first.setdefault(str(r.program), r)
    order = sorted(first.values(), key=lambda r: (-r.fitness, r.id))
    rest = order[top:]
    drawn = np.random.default_rng(seed).choice(len(rest), min(spread, len(rest)), replace=False) if rest else []
    picked = order[:top] + [rest[i] for i in sorted(drawn)]
    return [Candidate(campaign_name(run_dir), r.id, str(r.program), float(r.fitness)) for r in picked]


def campaign_name(run_dir: str | os.PathLike) -> str:
    """A campaign's name among a study's: its run directory and the folder above (``search/seed0``)."""
    run_dir = pathlib.Path(run_dir)
    return f"{run_dir.parent.name}/{run_dir.name}"


def correlations(candidates: Sequence[Candidate], scores: Mapping[str, Sequence[float]],
                 target: Sequence[float]) -> dict[str, dict[str, float]]:
    """For each named score: Spearman against ``target`` over all candidates (``pooled``) and the mean of
    the per-campaign ones (``within``: campaigns of 3 candidates or more with a defined correlation)."""
    campaigns: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        campaigns.setdefault(c.campaign, []).append(i)
    target = np.asarray(target, np.float64)
    out = {}
    for name, values in scores.items():
        values = np.asarray(values, np.float64)
        within = [spearman(values[idx], target[idx]) for idx in campaigns.values() if len(idx) >= 3]
        within = [w for w in within if not math.isnan(w)]
        out[name] = {"pooled": spearman(values, target), "within": float(np.mean(within)) if within else math.nan}
    return out

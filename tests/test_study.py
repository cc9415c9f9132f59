"""The study's parts that need no campaign: Spearman, the panel, the control configuration."""

import math

import pytest

from symopt.cli.study import control, panel, spearman, with_factors
from symopt.programs import baselines
from symopt.search.space import load


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 2], [5, 5, 6]) == pytest.approx(1.0)  # ties share their mean rank
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_panel_holds_every_baseline_program_at_three_factors_and_mutants():
    config = load("quick")
    items = panel(config, mutants=4)
    programs = [n for n in baselines.names() if baselines.is_program(n)]
    assert len(items) == 3 * len(programs) + 4 and len({label for label, _ in items}) == len(items)
    assert panel(config, mutants=4)[-1][1] == items[-1][1]  # a fixed seed: the same panel every time


def test_control_mutates_constants_only():
    config = load("quick")
    m = control(config).space.mutation
    assert config.space.mutation.accumulate > 0  # every structural operator is off in the control, this one too
    assert (m.insert, m.delete, m.modify, m.accumulate, m.constant) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert control(config).campaign == config.campaign


def test_with_factors_sets_every_stage_and_validation_grid():
    config = with_factors(load("quick"), (0.1, 1 / 3, 1, 3))
    assert all(s.grid.factors == (0.1, 1 / 3, 1.0, 3.0) for s in config.campaign.stages)
    assert config.campaign.stages[0].grid.gates == load("quick").campaign.stages[0].grid.gates  # the rest kept

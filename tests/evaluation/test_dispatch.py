"""One toy/JAX dispatch (symopt.evaluation.dispatch) and one backend resolution (campaign.resolve_backend)."""

import pytest

from symopt.campaign.campaign import BACKENDS, resolve_backend, serial_backend
from symopt.evaluation import Grid, toy
from symopt.evaluation.dispatch import check_grid, evaluate_tasks
from symopt.programs import baselines


def test_toy_tasks_train_with_numpy_as_toy_evaluate_does():
    programs = [baselines.get("sgd"), baselines.get("momentum")]
    ours = evaluate_tasks(programs, ["toy_quadratic"], (0, 1))
    theirs = toy.evaluate(programs, ["toy_quadratic"], (0, 1))
    assert [r.fitness for r in ours] == [r.fitness for r in theirs]


def test_toy_tasks_score_no_gates_and_the_serial_backend_says_so_before_training():
    with pytest.raises(ValueError, match="the NumPy toy tasks score no gates"):
        check_grid(["toy_quadratic"], Grid(gates=("toy_quadratic",)))
    with pytest.raises(ValueError, match="the NumPy toy tasks score no gates"):
        serial_backend(["toy_quadratic"], (0,), None, Grid(gates=("toy_quadratic",)))
    check_grid(["quadratic_illcond"], Grid(gates=("quadratic_illcond",)))  # the JAX tasks do


def test_a_backend_is_resolved_in_one_place():
    assert resolve_backend("serial") is BACKENDS["serial"] is serial_backend
    mine = lambda tasks, seeds, steps, grid, functions: None  # noqa: E731
    assert resolve_backend(mine) is mine
    with pytest.raises(ValueError, match="unknown backend 'ray'; use one of serial or a callable"):
        resolve_backend("ray")

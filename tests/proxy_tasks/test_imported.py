"""Tasks of the user's own by import path ("module:attr"): resolved by proxy_tasks.get, checked before any
worker starts (one line naming file, field, task and problem), shipped to Ray actors; docs/tasks.md's example runs."""

import itertools
import json
import math
import pathlib
import shutil
import tomllib

import pytest

import proxy_tasks
from symopt.cli import main
from symopt.tools.compare import CompareError, compare
from symopt.config.space import check_tasks, load

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = itertools.count()

TASKS = """
import jax
import jax.numpy as jnp
from proxy_tasks import Task

def make(lr=0.1, vector=False):
    def loss(p, b):
        r = (p["w"] - b) ** 2
        return r if vector else jnp.mean(r)
    return Task(name="q", tag="search", init=lambda k: {"w": jax.random.normal(k, (4,))}, loss=loss,
                batch=lambda k, i: jnp.ones(4), eval_loss=lambda p: jnp.mean((p["w"] - 1.0) ** 2),
                steps=30, learning_rate=lr)

good = make()
def vector() -> Task:
    return make(vector=True)

def wild() -> "proxy_tasks.Task":  # the mark written as a string: read, never evaluated
    return make(lr=1e30)

not_a_task = 42
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A module of tasks written in tmp_path and put on sys.path; its name is new to the process."""
    name = f"byo_tasks{next(MODULES)}"
    (tmp_path / f"{name}.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _config(tmp_path, stage=(), validation=()):
    path = tmp_path / "space.toml"
    path.write_text(f"[campaign]\nvalidation = {json.dumps(list(validation))}\n"
                    f"[[campaign.stages]]\ntasks = {json.dumps(['quadratic_illcond', *stage])}\n")
    return path


def test_an_import_path_resolves_to_the_task_renamed(module):
    task = proxy_tasks.get(f"{module}:good")
    assert isinstance(task, proxy_tasks.Task) and task.name == f"{module}:good" and task.learning_rate == 0.1
    assert proxy_tasks.get(f"{module}:vector").name == f"{module}:vector"  # a function returning a Task
    assert proxy_tasks.check(f"{module}:good") is None


@pytest.mark.parametrize("attr, field, problem", [
    ("nope", "campaign.stages[0].tasks[1]", "has no attribute 'nope'"),
    ("", "campaign.stages[0].tasks[1]", "not an import path"),
])
def test_a_bad_path_is_refused_when_the_file_loads(module, tmp_path, attr, field, problem):
    path = _config(tmp_path, stage=[f"{module}:{attr}"])
    with pytest.raises(ValueError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: {field}: task '{module}:{attr}'") and problem in str(e.value)
    assert "\n" not in str(e.value)


def test_a_missing_module_is_refused_when_the_file_loads(tmp_path):
    path = _config(tmp_path, validation=["no_such_module_here.tasks:net"])
    with pytest.raises(ValueError, match=r"campaign.validation\[0\]: task 'no_such_module_here.tasks:net': "
                                         r"no module named 'no_such_module_here'"):
        load(path)


def test_an_attribute_that_is_no_task_nor_factory_is_refused_when_the_file_loads(module, tmp_path):
    (tmp_path / f"{module}.py").write_text(TASKS + "def unmarked():\n    return make()\n")
    for attr, what in [("not_a_task", "int"), ("unmarked", "function")]:
        path = _config(tmp_path, validation=[f"{module}:good", f"{module}:{attr}"])
        with pytest.raises(ValueError, match=rf"campaign.validation\[1\]: task '{module}:{attr}': {what} is not a task "
                                             r"\(no init, .*\(def " + attr + r"\(\) -> Task: ...\); symopt calls "
                                             "nothing else$"):
            load(path)


@pytest.mark.parametrize("attr, problem", [
    ("vector", "loss returns (4,) float32, not a float scalar"),
    ("wild", "AdamW at the reference learning_rate 1e+30 does not train it"),
])
def test_a_task_that_cannot_train_is_refused_before_any_worker(module, tmp_path, attr, problem):
    path = _config(tmp_path, validation=[f"{module}:good", f"{module}:{attr}"])
    config = load(path)  # the module and attribute exist: nothing is built or trained yet
    with pytest.raises(ValueError) as e:
        check_tasks(config)
    assert str(e.value).startswith(f"{path}: campaign.validation[1]: task '{module}:{attr}': ")
    assert problem in str(e.value) and "\n" not in str(e.value)


def test_symopt_search_refuses_a_task_that_cannot_train_in_one_line(module, tmp_path, capsys):
    path = _config(tmp_path, stage=[f"{module}:vector"])
    assert main(["search", str(path), "--serial", "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"symopt search: {path}: campaign.stages[0].tasks[1]: task '{module}:vector': loss returns "
                          "(4,) float32, not a float scalar") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # the directory it made for the run is gone, lock and all
    (tmp_path / "kept").mkdir()  # a directory that was there before stays
    assert main(["search", str(path), "--serial", "--run-dir", str(tmp_path / "kept")]) == 1
    assert (tmp_path / "kept").is_dir()


def test_compare_takes_an_import_path(module, capsys):
    assert main(["compare", "sgd", "--tasks", f"{module}:not_a_task", "--steps", "10"]) == 1
    assert capsys.readouterr().err == (f"symopt compare: --tasks: task '{module}:not_a_task': int is not a task (no "
                                       "init, loss, batch, eval_loss, steps, learning_rate); give a proxy_tasks.Task, "
                                       "or a function of no arguments marked as a task factory by its return "
                                       "annotation (def not_a_task() -> Task: ...); symopt calls nothing else\n")
    _, tasks, cells = compare(["sgd"], [f"{module}:good"], steps=10, lrs=(1.0,))
    assert tasks[0].name == f"{module}:good" and math.isfinite(cells["sgd"][0].losses[1.0])
    with pytest.raises(CompareError, match=f"--tasks: task '{module}:wild': AdamW"):
        compare(["sgd"], [f"{module}:wild"], steps=10, lrs=(1.0,))


def test_readme_example_runs_on_ray_workers(ray_session, tmp_path, monkeypatch):
    """examples/sine_task.py (copied to a temporary directory only the driver's path knows) and
    examples/sine.toml, shrunk: a campaign on real Ray actors, which get the module by runtime_env."""
    from symopt.distributed import EvaluatorPool
    from symopt.distributed.cluster import task_runtime_env
    from symopt.campaign import search
    from symopt.config.space import task_names

    shutil.copy(ROOT / "examples" / "sine_task.py", tmp_path / "sine_task.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = tomllib.loads((ROOT / "examples" / "sine.toml").read_text())
    table["campaign"].update(budget=6, population=4, tournament=2, seeds=[0], hall_of_fame=2)
    for stage in table["campaign"]["stages"]:
        stage.update(steps=40, lr_factors=[1.0])
    table["campaign"]["stages"][1]["promote"] = 2
    env = task_runtime_env(task_names(load(table)))
    assert env["py_modules"] and all("://" in u for u in env["py_modules"])  # uploaded: URIs, not paths
    pool = EvaluatorPool(workers=2, actor_options={"runtime_env": env})
    try:
        campaign = search(table, seed=0, backend=pool.backend, run_dir=tmp_path / "run")
    finally:
        pool.shutdown()
    assert campaign.stats.evaluated == 6 and pool.stats.delivered >= 6
    records = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} >= {"small", "wide"}
    assert all(math.isfinite(r["fitness"]) for r in records)
    assert all(e.validation is not None and math.isfinite(e.validation) for e in campaign.hall_of_fame)


def test_the_tasks_page_shows_the_example_files_as_they_are():
    page = (ROOT / "docs" / "tasks.md").read_text()
    for name in ("sine_task.py", "sine.toml"):
        assert (ROOT / "examples" / name).read_text().rstrip() in page, f"docs/tasks.md's copy of examples/{name} is stale"

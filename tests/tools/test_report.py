"""symopt report on a real tiny toy run and on hand-built run directories (real training, no mocks)."""

import argparse
import json

import matplotlib.image
import numpy as np
import pytest

from symopt.cli import report as report_command
from symopt.evaluation.fitness import DIVERGED
from symopt.tools import report
from symopt.evaluation import toy
from symopt.campaign.campaign import search
from symopt.tools.inspect_run import entry_program
from symopt.storage.run_dir import read_log, read_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_report(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    return report_command.main(parser.parse_args(list(argv)))


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def write_hall_of_fame(run_dir, campaign) -> None:
    """RUN/hall_of_fame.json as ``symopt search`` writes it (symopt/cli/search.py)."""
    (run_dir / "hall_of_fame.json").write_text(json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds, "replayed": campaign.replayed}))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    config = toy.campaign(budget=30)
    config["campaign"]["check_interval"] = 10  # funnel checks at 10 and 20 trainings: meta_validation.json
    campaign = search(config, run_dir=run_dir, seed=0)
    write_hall_of_fame(run_dir, campaign)
    return run_dir, campaign


@pytest.mark.slow
def test_report_on_a_toy_run(toy_run, tmp_path, capsys):
    run_dir, campaign = toy_run
    out = tmp_path / "out"
    assert run_report(str(run_dir), "-o", str(out)) == 0
    printed = capsys.readouterr().out
    assert "toy tasks have no loss curves" in printed and "toy_quadratic_noisy" in printed
    for name in ("fitness.png", "meta_validation.png", "pareto.png"):
        assert_png(out / name)
        assert f"wrote {out / name}" in printed
    assert not (out / "curves.png").exists()
    assert [p.trained for p in read_run(run_dir).meta_validation] == [10, 20, 30]
    md = (out / "report.md").read_text()
    assert str(campaign.hall_of_fame[0].simplified).splitlines()[-1].strip() in md
    assert "| memory (B/param) | fitness | id |" in md


def test_best_so_far_covers_the_search_stage_only(toy_run):
    run_dir, campaign = toy_run
    run = read_run(run_dir)
    assert report.first_stage(run) == "small"
    assert {r.stage for r in run.records} >= {"small", "large", "validation"}
    records = report.search_records(run.records, "small")
    assert len(records) == campaign.stats.evaluated and {r.stage for r in records} == {"small"}
    fitness, best = report.best_so_far(records)
    assert np.all(np.diff(best) >= 0)
    logged = [r.fitness if r.fitness is not None else DIVERGED
              for r in read_log(run_dir / "evaluations.jsonl")[0] if r.stage == "small"]
    assert best[-1] == max(logged) == campaign.best.fitness


@pytest.mark.slow
def test_loss_curves_on_proxy_tasks(toy_run, tmp_path, capsys):
    run_dir, _ = toy_run
    out = tmp_path / "out"
    assert run_report(str(run_dir), "-o", str(out), "--tasks", "quadratic_illcond", "matrix_completion",
                      "toy_quadratic", "--steps", "50") == 0
    printed = capsys.readouterr().out
    assert "skipped toy_quadratic" in printed
    assert_png(out / "curves.png")
    assert "curves.png" in (out / "report.md").read_text()


@pytest.mark.slow
def test_loss_curves_data(toy_run):
    run = read_run(toy_run[0])
    winner = entry_program(run.hall_of_fame, 1, toy_run[0], simplified=False)
    curves = report.loss_curves(winner, ["quadratic_illcond"], steps=50)
    runs = curves["quadratic_illcond"]
    assert list(runs) == ["winner", "adamw", "lion"]
    adamw = runs["adamw"].run
    assert runs["adamw"].factor == 1.0 and adamw.losses.shape == (50,) and not adamw.diverged
    assert adamw.losses[-1] < adamw.losses[0]


@pytest.mark.slow
def test_loss_curves_keep_each_optimizers_best_learning_rate(toy_run):
    from symopt.evaluation import evaluate
    from symopt.evaluation.fitness import Grid
    from symopt.programs import baselines

    run = read_run(toy_run[0])
    winner = entry_program(run.hall_of_fame, 1, toy_run[0], simplified=False)
    lrs = (0.1, 1.0, 10.0)
    curves = report.loss_curves(winner, ["quadratic_illcond"], steps=30, lrs=lrs)["quadratic_illcond"]
    for label, program in (("winner", winner), ("lion", baselines.get("lion"))):
        [r] = evaluate([program], ["quadratic_illcond"], steps=30, grid=Grid(lrs))
        runs = {f: r.run("quadratic_illcond", 0, f) for f in lrs}
        losses = {f: run.eval_loss if not run.diverged else float("inf") for f, run in runs.items()}
        assert len(set(losses.values())) > 1  # the factors train differently: the choice means something
        assert curves[label].factor == min(losses, key=losses.get)
        assert curves[label].run.eval_loss == losses[curves[label].factor]


@pytest.mark.slow
def test_loss_curves_on_two_threads_are_those_of_one(toy_run):
    run = read_run(toy_run[0])
    winner = entry_program(run.hall_of_fame, 1, toy_run[0], simplified=False)
    tasks = ["quadratic_illcond", "logreg_synthetic", "quadratic_noisy"]
    one = report.loss_curves(winner, tasks, steps=30, lrs=(0.3, 1.0), threads=1)
    two = report.loss_curves(winner, tasks, steps=30, lrs=(0.3, 1.0), threads=2)
    assert list(two) == tasks
    for task in tasks:
        for label, curve in one[task].items():
            assert two[task][label].factor == curve.factor
            np.testing.assert_array_equal(two[task][label].run.losses, curve.run.losses)


# -- a hand-built run: known programs, known front -------------------------------------------------------

SLOTS_0 = "def train(g):\n    return g\n"
SLOTS_1 = "def train(g, m):\n    m = interpolate(m, g, 0.1)\n    return m, m\n"
SLOTS_2 = "def train(g, m, v):\n    m = interpolate(m, g, 0.1)\n    v = interpolate(v, square(g), 0.01)\n" \
          "    return m / sqrt(v), m, v\n"
RECORDS = [  # (id, program, fitness, stage)
    (0, SLOTS_1, 0.5, "search"),
    (1, SLOTS_0, 0.1, "search"),
    (2, SLOTS_1, 0.3, "search"),
    (3, SLOTS_2, 0.4, "search"),
    (4, SLOTS_2, 0.9, "search"),
    (5, SLOTS_2, None, "search"),  # diverged
    (4, SLOTS_2, 5.0, "later"),  # later funnel stage and validation: not on the plots
    (0, SLOTS_1, 7.0, "validation"),
]


def hand_built(tmp_path, config=True, hall_of_fame=True):
    run_dir = tmp_path / "hand"
    run_dir.mkdir()
    with open(run_dir / "evaluations.jsonl", "w") as f:
        for id, program, fitness, stage in RECORDS:
            f.write(json.dumps({"id": id, "parent": None, "program": program, "fitness": fitness, "stage": stage,
                                "submitted": 1.0}) + "\n")
    if config:
        (run_dir / "config.json").write_text(json.dumps(
            {"campaign": {"stages": [{"name": "search"}, {"name": "later"}], "validation": ["toy_quadratic"]}}))
    if hall_of_fame:
        entry = {"id": 4, "program": SLOTS_2, "simplified": SLOTS_2, "fitness": {"search": 0.9}, "validation": 7.0}
        (run_dir / "hall_of_fame.json").write_text(json.dumps({"hall_of_fame": [entry]}))
    return run_dir


@pytest.mark.parametrize("config", [True, False])
def test_pareto_front_of_a_hand_built_run(tmp_path, config):
    run = read_run(hand_built(tmp_path, config=config))
    stage = report.first_stage(run)
    assert stage == "search"
    pts = report.points(report.search_records(run.records, stage))
    assert [(p.id, p.memory, p.fitness) for p in pts] == [
        (0, 4, 0.5), (1, 0, 0.1), (2, 4, 0.3), (3, 8, 0.4), (4, 8, 0.9), (5, 8, DIVERGED)]
    assert [p.id for p in report.pareto_front(pts)] == [1, 0, 4]


def test_pareto_front_keeps_the_lowest_id_of_equal_points():
    P = report.Point
    pts = [P(7, 4, 0.5), P(3, 4, 0.5), P(2, 8, 0.5), P(9, 0, -1.0)]
    assert [p.id for p in report.pareto_front(pts)] == [9, 3]


def test_report_of_a_hand_built_run(tmp_path, capsys):
    run_dir = hand_built(tmp_path)
    assert run_report(str(run_dir)) == 0
    out = run_dir / "report"
    assert_png(out / "fitness.png")
    assert_png(out / "pareto.png")
    md = (out / "report.md").read_text()
    assert "| 0 | +0.1000 | 1 |" in md and "| 4 | +0.5000 | 0 |" in md and "| 8 | +0.9000 | 4 |" in md
    assert "5.0000" not in md and "7.0000" not in md
    assert "m / sqrt(v)" in md


@pytest.mark.slow
def test_a_run_without_hall_of_fame_still_gets_fitness_and_pareto(tmp_path, capsys):
    run_dir = hand_built(tmp_path, hall_of_fame=False)
    assert run_report(str(run_dir), "--tasks", "quadratic_illcond") == 0
    printed = capsys.readouterr().out
    assert "no hall_of_fame.json" in printed and "loss curves skipped" in printed
    assert_png(run_dir / "report" / "fitness.png")
    assert_png(run_dir / "report" / "pareto.png")
    assert not (run_dir / "report" / "curves.png").exists()


@pytest.mark.parametrize("case, expected", [
    ("missing dir", "does not exist"),
    ("missing log", "has no evaluations.jsonl"),
    ("corrupt log", "line 1 is corrupt"),
    ("bad rank", "no rank 3; the only rank is 1"),
    ("unknown task", "unknown task 'quadratc'"),
    ("bad steps", "--steps 0: give 1 to 1,000,000 training steps per task"),
    ("no search records", "no record of the search stage 'renamed'"),
])
def test_errors_name_the_problem(tmp_path, capsys, case, expected):
    run_dir = hand_built(tmp_path)
    argv = [str(run_dir)]
    if case == "missing dir":
        argv = [str(tmp_path / "nope")]
    elif case == "missing log":
        (run_dir / "evaluations.jsonl").unlink()
    elif case == "corrupt log":
        (run_dir / "evaluations.jsonl").write_text("{oops\n" + (run_dir / "evaluations.jsonl").read_text())
    elif case == "bad rank":
        argv += ["--rank", "3"]
    elif case == "unknown task":
        argv += ["--tasks", "quadratc"]
    elif case == "bad steps":
        argv += ["--tasks", "quadratic_illcond", "--steps", "0"]
    elif case == "no search records":
        (run_dir / "config.json").write_text(json.dumps({"campaign": {"stages": [{"name": "renamed"}]}}))
    assert run_report(*argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("symopt report: ") and expected in err
    if case in ("missing dir", "missing log", "corrupt log"):
        assert str(argv[0]) in err
    assert not (run_dir / "report").exists()


@pytest.mark.parametrize("content", ["{not json", '{"trained": 3}', '[{"trained": "ten"}]'])
def test_a_bad_meta_validation_file_is_one_line_naming_it(toy_run, tmp_path, capsys, content):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(toy_run[0], run_dir)
    (run_dir / "meta_validation.json").write_text(content)
    assert run_report(str(run_dir), "-o", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta_validation.json" in err and "fix or delete it" in err

"""symopt inspect / export / compare on a tiny real run (real search, real training, no mocks)."""

import importlib.util
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import proxy_tasks
from symopt.cli import main
from symopt.export import to_optax
from symopt.programs import parse
from symopt.programs.liveness import live_states
from symopt.programs.program import Call, Const, Program
from symopt.tools import compare as compare_mod
from symopt.storage.run_dir import ancestry, read_hall_of_fame, read_lineage

TINY = """name = "tiny"
[space]
functions = ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate"]
arguments = ["w", "g", "m"]
max_length = 8
[campaign]
start = "momentum"
population = 4
tournament = 2
budget = 6
hall_of_fame = 2
validation = ["quadratic_noisy"]
[[campaign.stages]]
name = "quad"
tasks = ["quadratic_illcond"]
steps = 50
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    (root / "tiny.toml").write_text(TINY)
    run = root / "run"
    assert main(["search", str(root / "tiny.toml"), "--serial", "--seed", "0", "--run-dir", str(run)]) == 0
    return run


@pytest.mark.slow
def test_inspect_prints_the_hall_of_fame(run_dir, capsys):
    data = read_hall_of_fame(run_dir)
    lineage = read_lineage(run_dir)
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("rank"))
    assert "quad" in header and "validation" in header and "state" in header
    for rank, entry in enumerate(data.entries, 1):
        row = next(line for line in lines if line.startswith(f"#{rank} "))
        assert f"{entry.fitness['quad']:+.3f}" in row and f"{entry.validation:+.3f}" in row
        n = len(live_states(entry.simplified))
        assert f"{n} slot{'s' if n != 1 else ''} = {4 * n} B/param" in row
        assert all(text_line in out for text_line in str(entry.simplified).splitlines())
        chain = ancestry(lineage, entry.id)
        assert chain[0] == 0 and chain[-1] == entry.id
        assert all(lineage[child].parent == parent for parent, child in zip(chain, chain[1:]))
        if entry.id:
            assert " > ".join(map(str, chain)) in out
    assert main(["inspect", str(run_dir), "--brief"]) == 0
    assert "def " not in capsys.readouterr().out


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_steps(exported, reference):
    """Three steps of both optimizers on the same gradients give the same updates."""
    params = {"a": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 7, "b": jnp.array([0.5, -1.0], jnp.float32)}
    s1, s2 = exported.init(params), reference.init(params)
    for i in range(3):
        grads = jax.tree_util.tree_map(lambda x: jnp.sin(x * (i + 1)) + 0.1, params)
        u1, s1 = exported.update(grads, s1, params)
        u2, s2 = reference.update(grads, s2, params)
        for x, y in zip(jax.tree_util.tree_leaves(u1), jax.tree_util.tree_leaves(u2)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
        params = optax.apply_updates(params, u1)


@pytest.mark.slow
def test_export_writes_a_module_equal_to_to_optax(run_dir, tmp_path, capsys):
    out = tmp_path / "found.py"
    assert main(["export", str(run_dir), "--rank", "1", "-o", str(out)]) == 0
    assert "found_rank1" in capsys.readouterr().out
    program = read_hall_of_fame(run_dir).entries[0].simplified
    assert_same_steps(_load(out, "found").found_rank1(0.01), to_optax(program, 0.01))
    assert main(["export", str(run_dir), "--rank", "2", "-o", str(tmp_path / "two.py"), "--name", "mine"]) == 0
    assert "def mine(" in (tmp_path / "two.py").read_text()


@pytest.mark.slow
def test_export_simplifies_again_when_the_stored_simplified_form_differs(run_dir, tmp_path, capsys):
    # A run written before simplification was checked this strictly may hold a simplified form that
    # computes something else: export must not write it.
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    hof_path = copy / "hall_of_fame.json"
    hof = json.loads(hof_path.read_text())
    found = parse(hof["hall_of_fame"][0]["program"])
    wrong = Program(found.args, found.body, (Call("*", (found.returns[0], Const(2.0))), *found.returns[1:]),
                    found.name)
    hof["hall_of_fame"][0]["simplified"] = str(wrong)
    hof_path.write_text(json.dumps(hof))
    out = tmp_path / "found.py"
    assert main(["export", str(copy), "--rank", "1", "-o", str(out)]) == 0
    assert "differs from the program as found" in capsys.readouterr().err
    assert_same_steps(_load(out, "found_again").found_rank1(0.01), to_optax(found, 0.01))


@pytest.mark.slow
def test_derive_a_rank_then_export_the_derived_form(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    out = tmp_path / "derived.py"
    assert main(["export", str(copy), "--derived", "-o", str(out)]) == 1
    assert "symopt derive" in capsys.readouterr().err  # nothing derived yet: says what to run
    assert main(["derive", str(copy), "--rank", "1", "--tolerance", "0.05", "--validate"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((copy / "derived_rank1.json").read_text())
    entry = read_hall_of_fame(copy).entries[0]
    # the same fitness as the campaign's: the start scores what the run logged, on its stage and on validation
    assert saved["steps"][0]["fitness"] == pytest.approx(entry.fitness["quad"], abs=1e-9)
    assert saved["validation"]["start"] == pytest.approx(entry.validation, abs=1e-9)
    assert "validation (quadratic_noisy):" in printed
    assert saved["stage"] == "quad" and saved["start"] == str(read_hall_of_fame(copy).entries[0].program)
    assert printed.split("\n\nsaved ")[0].rstrip().endswith(saved["derived"].rstrip())
    assert main(["export", str(copy), "--derived", "-o", str(out)]) == 0
    assert_same_steps(_load(out, "derived").found_rank1(0.01), to_optax(parse(saved["derived"]), 0.01))
    saved["start"] = str(read_hall_of_fame(copy).entries[1].program)  # another program's: refused
    (copy / "derived_rank1.json").write_text(json.dumps(saved))
    assert main(["export", str(copy), "--derived", "-o", str(out)]) == 1
    assert "derives another program" in capsys.readouterr().err
    (copy / "derived_rank1.json").write_text('{"start": ')
    assert main(["export", str(copy), "--derived", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "derived_rank1.json" in err and "symopt derive" in err


@pytest.mark.slow
def test_scaled_program_trains_like_to_optax_at_that_lr():
    task = proxy_tasks.get("quadratic_illcond")
    for name in ("lion", "momentum"):  # with an lr argument, and without
        program = parse(str(__import__("symopt").baselines.get(name)))
        _, cells = compare_mod.compare([name], ["quadratic_illcond"], steps=40, lrs=[0.3])[1:]
        _, expected = proxy_tasks.train(task, to_optax(program, task.schedule(0.3, 40)), seed=0, steps=40)
        assert cells[name][0].losses[0.3] == pytest.approx(expected, rel=1e-4, abs=1e-7)


@pytest.mark.slow
def test_compare_picks_the_better_lr(capsys):
    argv = ["compare", "adam", "momentum", "adamw", "--tasks", "quadratic_illcond", "--steps", "60", "--lrs", "0.1", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "adam " in out and "momentum " in out and "vs AdamW at its best" in out
    labels, tasks, cells = compare_mod.compare(["adam", "momentum", "adamw"], ["quadratic_illcond"], steps=60,
                                               lrs=[0.1, 3])
    base = tasks[0].learning_rate
    assert cells["adamw"][0].score == pytest.approx(0.0, abs=1e-6)  # AdamW against itself, both at their best
    for label in labels:
        c = cells[label][0]
        assert c.losses[c.best] == min(c.losses.values()) and c.lr == pytest.approx(c.best * base)
        assert c.adamw == cells["adamw"][0].losses[cells["adamw"][0].best]
        assert c.score == pytest.approx(math.log(c.adamw / c.losses[c.best]))
        assert f"@ lr {c.lr:.3g}" in next(line for line in out.splitlines() if line.startswith(label + " "))
        assert len({c.losses[0.1], c.losses[3.0]}) == 2


@pytest.mark.slow
def test_compare_a_found_program_and_adafactor(run_dir, capsys):
    assert main(["compare", f"{run_dir}:1", "adafactor", "--tasks", "quadratic_illcond", "--steps", "30",
                 "--lrs", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{run_dir}:1" in out and "adafactor" in out


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["inspect", "{missing}"], "does not exist; expected a run directory"),
    (["inspect", "{tmp}"], "has no hall_of_fame.json"),
    (["export", "{run}", "--rank", "3", "-o", "{tmp}/x.py"], "no rank 3; available ranks: 1 to 2"),
    (["export", "{run}", "--rank", "0", "-o", "{tmp}/x.py"], "no rank 0; available ranks: 1 to 2"),
    (["export", "{run}", "--rank", "-1", "-o", "{tmp}/x.py"], "no rank -1; available ranks: 1 to 2"),
    (["export", "{run}", "--name", "1x", "-o", "{tmp}/x.py"], "--name '1x' is not a valid Python function name"),
    (["export", "{missing}", "-o", "{tmp}/x.py"], "does not exist"),
    (["compare", "adamm", "--tasks", "quadratic_illcond"], "unknown baseline 'adamm' (did you mean 'adam'"),
    (["compare", "adam", "--tasks", "quadratc"], "unknown proxy task 'quadratc'"),
    (["compare", "{run}:5", "--tasks", "quadratic_illcond"], "no rank 5; available ranks: 1 to 2"),
    (["compare", "adam", "--tasks", "quadratic_illcond", "--lrs", "-1"], "must be positive"),
])
def test_bad_inputs_exit_1_with_a_clear_error(run_dir, tmp_path, capsys, argv, message):
    fill = {"missing": str(tmp_path / "nope"), "tmp": str(tmp_path), "run": str(run_dir)}
    assert main([a.format(**fill) for a in argv]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.startswith(f"symopt {argv[0]}: ")

"""symopt derive: a raw Lion-like program shortened to Lion's form, each step checked by real training."""

import json
import pathlib
import zlib

import pytest

from symopt.cli import main
from symopt.programs import parse
from symopt.programs.program import Call, Var, walk
from symopt.tools import derive as derive_mod
from symopt.evaluation import toy
from symopt.tools.derive import derive

ROOT = pathlib.Path(__file__).resolve().parents[2]
RAW_LION = (ROOT / "examples" / "raw_lion.py").read_text()
DIGITS = ROOT / "examples" / "digits.toml"  # mlp_digits and cnn_digits at 100 steps: momentum pays there


@pytest.fixture(scope="module")
def lion():
    return derive(RAW_LION, DIGITS)


def _definition(program, name):
    return next(s.value for s in reversed(program.body) if s.target == name)


@pytest.mark.slow
def test_raw_lion_derives_to_lions_form(lion):
    raw, derived = parse(RAW_LION), lion.derived
    assert len(derived.body) < len(raw.body)
    # Lion's form: the update is (a constant times lr times) the sign of an interpolation of the gradient
    update = derived.returns[0]
    update = _definition(derived, update.name) if isinstance(update, Var) else update
    sign = next(e for e in walk(update) if isinstance(e, Call) and e.fn == "sign")
    inner = sign.args[0]
    inner = _definition(derived, inner.name) if isinstance(inner, Var) else inner
    assert inner.fn == "interpolate" and Var("g") in inner.args
    assert {c.value for c in derived.constants()} <= {0.1, 0.3}  # 0.101, 0.0993, 0.3127 rounded
    assert not any(isinstance(e, Call) and e.fn in ("clip_by_global_norm", "cosh", "sqrt")
                   for s in derived.body for e in walk(s.value))
    # the dead state write goes first, proven equivalent and not trained
    assert lion.steps[1].change == "remove dead code: `m = cosh(update)`" and lion.steps[1].check == "exact"
    assert any(s.kind == "rewrite" and "sign(c)" in s.change and s.check == "trained" for s in lion.steps)
    assert all(s.fitness >= lion.floor for s in lion.steps)
    # the tolerance is the paired noise: the start against itself perturbed, on the same seeds
    assert lion.tolerance_from == "paired noise" and len(lion.noise) == 1 + derive_mod.NOISE_SETS
    assert lion.tolerance == pytest.approx(derive_mod.NOISE_SIGMAS * derive_mod.noise_sd(lion.noise))
    assert lion.tolerance > 0  # a perturbation of the last bits changes what training ends at
    assert lion.start_on_seed_sets[0] == lion.start.fitness and len(lion.start_on_seed_sets) == len(lion.noise)
    # the spread over seed sets (the tolerance before, 0.023-0.028) is far looser than a paired comparison needs
    assert lion.tolerance < 0.75 * (max(lion.start_on_seed_sets) - min(lion.start_on_seed_sets))


@pytest.mark.slow
def test_a_step_that_hurts_fitness_is_refused(lion):
    # dropping the momentum's update (v stays 0, so the rule is signSGD) costs more than the noise here
    dropped = [(c, f) for k, c, f in lion.refused if k == "remove" and c.startswith("remove `v = ")]
    assert dropped and all(f < lion.floor for _, f in dropped)
    assert any(s.target == "v" for s in lion.derived.body)
    assert all(f < lion.floor for _, _, f in lion.refused)


def _stage_backend(loss_without_momentum):
    """A backend whose fitness has the structure of training's: a part of the seed set's own (one seed set easier
    than another, 0.05 apart), shared by every program; a real loss of ``loss_without_momentum`` for a program
    that drops the momentum; and a draw within +-0.001 for each program text on each seed set (the paired noise:
    any change of the program draws again)."""
    def make(tasks, seeds, steps, grid, functions):
        def evaluate_fn(programs):
            out = []
            for p in programs:
                draw = zlib.crc32(f"{p}|{seeds}".encode()) / 2 ** 32 - 0.5  # in [-0.5, 0.5)
                loss = 0 if "interpolate" in str(p) else loss_without_momentum
                out.append(0.05 * (seeds[0] // derive_mod.NOISE_SEED_OFFSET) - loss + 0.002 * draw)
            return out
        return evaluate_fn
    return make


def test_the_tolerance_is_the_paired_noise_not_the_spread_over_seed_sets():
    program = "def train(w, g, m):\n    m = interpolate(m, g, 0.1)\n    u = sign(m)\n    return u, m\n"
    stage = {"name": "s", "campaign": {"stages": [{"name": "s", "tasks": ["toy_quadratic"]}]}}
    d = derive(program, stage, backend=_stage_backend(0.01))
    assert d.tolerance_from == "paired noise" and len(d.noise) == 3
    # the seed sets spread by 0.1, but start and perturbed start differ by at most 0.002 on each
    assert max(d.start_on_seed_sets) - min(d.start_on_seed_sets) > 0.09
    assert all(abs(x) <= 0.002 for x in d.noise)
    assert 0 < d.tolerance == derive_mod.NOISE_SIGMAS * derive_mod.noise_sd(d.noise) <= 0.004
    # so dropping the momentum (0.01 worse on every seed set) is refused: the spread would have let it through
    assert any(c.startswith("remove `m = ") for k, c, _ in d.refused)
    assert "interpolate" in str(d.derived)
    table = d.table()
    assert f"tolerance {d.tolerance:.4f}, 2 x the paired noise {derive_mod.noise_sd(d.noise):.4f}" in table
    data = d.as_json()
    assert data["tolerance_from"] == "paired noise" and data["noise"] == d.noise
    assert data["start_on_seed_sets"] == d.start_on_seed_sets
    # the start and its twin on each seed set, then every candidate trained once
    assert d.trained == 2 * (1 + derive_mod.NOISE_SETS) + len(d.refused) + sum(s.check == "trained" for s in d.steps)
    # a gain beyond the paired noise holds
    assert "interpolate" not in str(derive(program, stage, backend=_stage_backend(-0.005)).derived)


def test_the_paired_noise_needs_a_start_that_trains():
    def make(tasks, seeds, steps, grid, functions):
        return lambda programs: [float("nan") if seeds[0] >= 1000 else 0.0 for _ in programs]
    with pytest.raises(ValueError, match="diverges on some seeds.*give a tolerance"):
        derive("def train(g):\n    u = sign(g)\n    return u\n", "quick", backend=make)
    with pytest.raises(ValueError, match="noise_sets -1"):
        derive("def train(g):\n    u = sign(g)\n    return u\n", "quick", noise_sets=-1)


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    program = tmp_path / "rule.py"
    program.write_text("def train(w, g, m):\n    m = interpolate(m, g, 0.1013)\n    u = max(m, -1000.0)\n"
                       "    d = w * 0.5\n    return u, m\n")
    config = tmp_path / "toy.toml"
    config.write_text('name = "toy"\n[[campaign.stages]]\nname = "small"\ntasks = ["toy_quadratic"]\n')
    assert main(["derive", str(program), "--config", str(config), "--tolerance", "0.05"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("step"))
    assert header.split() == ["step", "change", "stmts", "fitness", "check"]
    row = next(line for line in out.splitlines() if "remove dead code: `d = w * 0.5`" in line)
    assert row.split()[0] == "1" and row.split()[-1] == "exact"  # the dead statement: proven, not trained
    assert "max(m, -1000.0) -> m" in out  # an identity on the values seen
    assert main(["derive", str(program), "--config", str(config), "--tolerance", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert out.rstrip().endswith(data["derived"].rstrip())  # the table ends with the derived program in full
    assert data["tolerance_from"] == "given" and data["steps"][-1]["statements"] == len(parse(data["derived"]).body)
    assert [s["step"] for s in data["steps"]] == list(range(len(data["steps"])))


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def train(g):\n    u = sqr(g)\n    return u\n")
    assert main(["derive", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 2" in err and "sqr" in err
    assert main(["derive", str(tmp_path / "missing.py")]) == 1
    assert "missing.py" in capsys.readouterr().err
    ok = tmp_path / "ok.py"
    ok.write_text("def train(g):\n    u = sign(g)\n    return u\n")
    assert main(["derive", str(ok), "--stage", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stage 'nope'" in err and "quick" in err


def test_kept_steps_hold_refused_do_not_and_training_is_cached():
    cached = derive_mod.CachedFitness(lambda programs: toy.evaluate(programs, ["toy_quadratic"]))
    program = parse("def train(w, g, m):\n    m = interpolate(m, g, 0.3)\n    u = m * 1.7\n    return u, m\n")
    steps, refused = derive_mod.run(program, cached, 0.0)
    floor = steps[0].fitness
    assert all(s.fitness >= floor for s in steps) and all(f < floor for _, _, f in refused)
    again = derive_mod.run(program, cached, 0.0)
    assert again[0] == steps and cached.hits > 0 and cached.trained == len(cached.cache)


def test_candidates():
    p = parse("def train(w, g, m):\n    c = interpolate(m, g, 0.899)\n    c2 = c * c\n    s = sqrt(c2)\n"
              "    u = c / s\n    m = c\n    return u, m\n")
    changes = [change for _, change in derive_mod.candidates(p, "rewrite")]
    assert changes == ["c / s -> sign(c)"]
    # c reassigned between c2 and the division: not the same value, no rewrite
    q = parse("def train(w, g, m):\n    c = interpolate(m, g, 0.9)\n    c2 = square(c)\n    c = c + w\n"
              "    u = c / sqrt(c2)\n    return u, m\n")
    assert list(derive_mod.candidates(q, "rewrite")) == []
    r = parse("def train(w, g):\n    u = g / abs(g)\n    return u\n")
    assert [str(c) for c, _ in derive_mod.candidates(r, "rewrite")] == ["def train(w, g):\n    u = sign(g)\n"
                                                                       "    return u\n"]
    rounded = [change for _, change in derive_mod.candidates(parse("def train(g):\n    u = g * 0.6882\n"
                                                                   "    return u\n"), "round")]
    assert rounded == ["0.6882 -> 0.7", "0.6882 -> 0.69", "0.6882 -> 0.688"]
    assert derive_mod.significant_digits(0.899) == 3 and derive_mod.significant_digits(0.9) == 1
    # a removal that leaves a name without a value is no candidate; operators are not replaced
    assert [c for _, c in derive_mod.candidates(parse("def train(g):\n    u = g * 2.0\n    return u\n"),
                                                "remove")] == []
    assert [c for _, c in derive_mod.candidates(parse("def train(g):\n    u = g * g\n    return u\n"),
                                                "replace")] == []

"""Search configuration: the shipped files load, and every bad value names the file, the key and the fix."""

import dataclasses
import pathlib

import pytest

from symopt.evaluation.fitness import Grid
from symopt.programs import parse
from symopt.programs.functions import HERO_FUNCTIONS
from symopt.config import space as space_mod
from symopt.config.space import SearchSpace, from_dict, load
from symopt.config.start import conform

TOY_STAGES = {"stages": [{"tasks": ["toy_quadratic"]}]}


def test_shipped_configs_load():
    hero = load("hero")
    assert hero.space.functions == HERO_FUNCTIONS and len(hero.space.functions) == 45
    assert hero.space.arguments == ("w", "g", "m", "v", "lr", "t")
    assert space_mod.start_program(hero.campaign.start, hero.space).args == hero.space.arguments
    quick = load(space_mod.SPACES_DIR / "quick.toml")
    assert quick.campaign.budget == 500 and quick.campaign.seeds == (0, 1)
    assert quick.campaign.stages[0].grid == Grid((1 / 3, 1.0, 3.0), hurdle=-0.1,
                                                 gates=("quadratic_illcond", "quadratic_noisy"))
    assert set(quick.campaign.validation).isdisjoint(t for s in quick.campaign.stages for t in s.tasks)
    assert set(hero.campaign.validation).isdisjoint(t for s in hero.campaign.stages for t in s.tasks)


def test_dict_config_and_defaults():
    cfg = from_dict({"campaign": TOY_STAGES})
    assert cfg.campaign.population == 100 and cfg.space.max_length == 30
    assert cfg.replace_campaign(budget=7).campaign.budget == 7
    stage = dataclasses.replace(cfg.campaign.stages[0], steps=-5)
    with pytest.raises(ValueError, match=r"<dict> \(overridden\): campaign.stages\[0\].steps: -5 is too small"):
        cfg.replace_campaign(stages=(stage,))
    with pytest.raises(ValueError, match="campaign.tournament"):
        cfg.replace_campaign(population=3)


@pytest.mark.parametrize("table, where, allowed", [
    ({"campaign": {"populaton": 5, **TOY_STAGES}}, "campaign.populaton", "did you mean 'population'"),
    ({"space": {"functions": ["sqr"]}, "campaign": TOY_STAGES}, r"space.functions\[0\]", "did you mean 'sqrt'"),
    ({"space": {"max_length": 0}, "campaign": TOY_STAGES}, "space.max_length", "an integer from 1 to 1,000"),
    ({"space": {"max_length": 2.5}, "campaign": TOY_STAGES}, "space.max_length", "expected an integer"),
    ({"space": {"constants": {"init": "uniform"}}, "campaign": TOY_STAGES}, "space.constants.init",
     "'normal', 'log-uniform'"),
    ({"space": {"constants": {"negative": 2.0}}, "campaign": TOY_STAGES}, "space.constants.negative",
     r"probability in \[0, 1\]"),
    ({"space": {"arguments": ["w", "m"]}, "campaign": TOY_STAGES}, "space.arguments", "gradient"),
    ({"space": {"arguments": ["g", "grad"]}, "campaign": TOY_STAGES}, "space.arguments", "role"),
    ({"campaign": {"stages": [{"tasks": ["toy_quadratic"]}, {"tasks": ["mlp_digit"]}]}},
     r"campaign.stages\[1\].tasks\[0\]", "did you mean 'mlp_digits'"),
    ({"campaign": {"stages": [{"tasks": ["toy_quadratic"], "promote": "x"}]}}, r"campaign.stages\[0\].promote",
     "expected an integer"),
    ({"campaign": {"stages": [{"task": ["toy_quadratic"]}]}}, r"campaign.stages\[0\].task", "did you mean 'tasks'"),
    ({"campaign": {"tournament": 500, **TOY_STAGES}}, "campaign.tournament", "1 .. population"),
    ({"campaign": {"start": "adamx", **TOY_STAGES}}, "campaign.start", "did you mean 'adam'"),
    ({"campaign": {"start": "def train(w, g, m, v, lr):\n    return sqr(g), m, v\n", **TOY_STAGES}},
     "campaign.start", "line 2"),
    ({"campaign": {"restart": {"from": "bets"}, **TOY_STAGES}}, "campaign.restart.from", "did you mean 'best'"),
    ({"campaign": {}}, "campaign.stages", "at least one stage"),
    ({"campaign": {"validation": "cnn_digits", **TOY_STAGES}}, "campaign.validation", "expected a list"),
    ({"spaces": {}}, "spaces", "allowed keys here: name, description, space, campaign"),
    ({"campaign": {"stages": [{"tasks": ["toy_quadratic", "toy_quadratic_noisy"], "gates": ["toy_quadratc"]}]}},
     r"campaign.stages\[0\].gates\[0\]", "not one of the stage's tasks"),
    ({"campaign": {"stages": [{"tasks": ["toy_quadratic"], "gates": ["toy_quadratic"]}]}},
     r"campaign.stages\[0\].gates", "at least one task must count"),
    ({"campaign": {"stages": [{"tasks": ["toy_quadratic", "toy_quadratic_noisy"], "gates": ["toy_quadratic"],
                               "gate": 2.0}]}}, r"campaign.stages\[0\].gate", "a number >= -1 and <= 1"),
    ({"space": {"arguments": ["w", "g", "lr"], "mutation": {"accumulate": 0.5}}, "campaign": TOY_STAGES},
     "space.mutation.accumulate", "needs a state slot"),
    ({"space": {"functions": ["+", "*"], "mutation": {"accumulate": 0.5}}, "campaign": TOY_STAGES},
     "space.mutation.accumulate", "add interpolate to space.functions"),
    ({"space": {"functions": ["+", "-", "*", "/", "orthogonalize"], "mutation": {"graft": 0.5}},
      "campaign": TOY_STAGES}, "space.mutation.graft", "add is_matrix, norm to space.functions"),
])
def test_bad_config_names_file_key_and_allowed(table, where, allowed):
    with pytest.raises(ValueError, match=f"^bad.toml: {where}: .*{allowed}"):
        from_dict(table, "bad.toml")


def test_bad_files(tmp_path: pathlib.Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load(bad)
    bad.write_text("[campaign]\nbudget = -1\n[[campaign.stages]]\ntasks = ['toy_quadratic']\n")
    with pytest.raises(ValueError, match=r"bad.toml: campaign.budget: -1 is too small"):
        load(bad)
    with pytest.raises(ValueError, match="missing.toml: cannot read.*hero, quick"):
        load(tmp_path / "missing.toml")


def test_conform_baselines_to_the_space():
    space = SearchSpace(arguments=("w", "g", "m", "v", "lr"))
    sgd = conform(parse("def sgd(g):\n    return g\n"), space)
    assert str(sgd) == "def sgd(w, g, m, v, lr):\n    update = g * lr\n    return update, m, v\n"
    lion = conform(parse("def lion(w, g, mu):\n    v = sign(mu)\n    update = v + w\n"
                         "    mu = interpolate(mu, g, 0.1)\n    return update, mu\n"), space)
    assert lion.args == space.arguments
    assert str(lion).splitlines()[1:] == ["    v_1 = sign(m)", "    update = v_1 + w",
                                          "    m = interpolate(m, g, 0.1)", "    update = update * lr",
                                          "    return update, m, v"]
    # returned expressions become statements, unless a name they assign is still read by another return
    both = conform(parse("def f(g, m):\n    return g + m, m * 0.5\n"), space)
    assert str(both).splitlines()[1:] == ["    update = (g + m) * lr", "    m_1 = m * 0.5",
                                          "    return update, m_1, v"]
    with pytest.raises(ValueError, match="'t'"):
        conform(parse("def f(g, t):\n    return g * t\n"), space)


# -- every numeric key has a documented range, checked before anything is created ---------------------

TINY = """name = "tiny"
[campaign]
population = 12
tournament = 4
budget = 5
[[campaign.stages]]
tasks = ["toy_quadratic"]
"""


def _numeric_fields(cls=space_mod.Config):
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(item):
            yield from _numeric_fields(item)
        elif item in (int, float):
            yield cls, f


def test_every_numeric_key_has_a_range_that_holds_its_default():
    fields = list(_numeric_fields())
    assert len(fields) > 25
    for cls, f in fields:
        allowed = f.metadata.get("range")
        assert isinstance(allowed, space_mod.Range), f"{cls.__name__}.{f.name} has no range"
        defaults = f.default if isinstance(f.default, tuple) else (f.default,)
        assert all(d in allowed for d in defaults), f"{cls.__name__}.{f.name}"


def test_the_configuration_page_lists_the_ranges():
    page = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert space_mod.ranges_table() in page


@pytest.mark.parametrize("line, expected", [
    ("population = 99999999999999999999", "campaign.population: 99999999999999999999 is too large; allowed: an "
                                          "integer from 1 to 100,000"),
    ("population = 1000000000000", "campaign.population: 1000000000000 is too large"),
    ("population = 1e12", "campaign.population: expected an integer, got float 1000000000000.0"),
    ("population = -3", "campaign.population: -3 is too small"),
    ("budget = 0", "campaign.budget: 0 is too small; allowed: an integer from 1 to 100,000,000"),
    ("seed = -1", "campaign.seed: -1 is too small; allowed: an integer from 0 to 4,294,967,295"),
    ("seeds = [0, 5000000000]", r"campaign.seeds[1]: 5000000000 is too large"),
    ("batch = 100000000", "campaign.batch: 100000000 is too large"),
    ("islands = 1000000", "campaign.islands: 1000000 is too large"),
    ("migrants = 13", "campaign.migrants: 13 is larger than campaign.population = 12"),
    ("simplify_timeout = 0.0", "campaign.simplify_timeout: 0.0 is too small; allowed: a number > 0 and <= 3600"),
])
def test_an_out_of_range_value_is_one_line_and_creates_nothing(tmp_path, monkeypatch, capsys, line, expected):
    from symopt.cli import main

    monkeypatch.chdir(tmp_path)
    key = line.split(" = ")[0]
    lines = [x for x in TINY.splitlines() if not x.startswith(f"{key} = ")]
    lines.insert(lines.index("[campaign]") + 1, line)
    (tmp_path / "big.toml").write_text("\n".join(lines) + "\n")
    assert main(["search", "big.toml", "--serial"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"symopt search: big.toml: {expected}") and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag, expected", [
    (["--budget", "0"], "tiny.toml (overridden): campaign.budget: 0 is too small"),
    (["--seed", "-2"], "tiny.toml (overridden): campaign.seed: -2 is too small"),
])
def test_an_out_of_range_override_is_one_line_and_creates_nothing(tmp_path, monkeypatch, capsys, flag, expected):
    from symopt.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    assert main(["search", "tiny.toml", "--serial", *flag]) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["../escaped", "a/b", "/abs", ".hidden", "", "-x", "a b"])
def test_a_name_that_is_not_plain_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, name):
    from symopt.cli import main

    monkeypatch.chdir(tmp_path / "..")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "esc.toml").write_text(TINY.replace('name = "tiny"', f"name = {name!r}".replace("'", '"')))
    assert main(["search", "esc.toml", "--serial"]) == 1
    err = capsys.readouterr().err
    assert f"esc.toml: name: {name!r} is not a plain name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == [
        "esc.toml"]


def test_a_toml_that_is_not_utf8_names_the_file(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(TINY.replace('"tiny"', '"tiny"\ndescription = "caf\xe9"').encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.toml: not UTF-8 text \(byte 0xe9 on line 2\); save the file as"):
        load(bad)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, capsys):
    from symopt.cli import main

    config = tmp_path / "bom.toml"
    config.write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    assert load(config).name == "tiny"
    program = tmp_path / "bom.py"
    program.write_bytes(b"\xef\xbb\xbf" + b"def train(g, m):\n    x = m\n    m = interpolate(m, g, 0.1)\n"
                                           b"    return m, m\n")
    assert main(["simplify", str(program), "--dead-code-only"]) == 0
    assert capsys.readouterr().out == "def train(g, m):\n    m = interpolate(m, g, 0.1)\n    return m, m\n"


def test_a_run_config_json_loads_back_to_the_same_config():
    from symopt.storage.run_log import config_json
    from symopt.config.space import from_fields

    for name in ("quick", "hero"):
        config = load(name)
        assert from_fields(config_json(config)) == config  # restart.source is written `source`, read as `from`

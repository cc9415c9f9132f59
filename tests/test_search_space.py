"""Search configuration: the shipped files load, and every bad value names the file, the key and the fix."""

import pathlib

import pytest

from symopt.evaluation.fitness import Grid

from symopt.programs import parse
from symopt.programs.functions import HERO_FUNCTIONS
from symopt.search import space as space_mod
from symopt.search.space import SearchSpace, conform, from_dict, load

TOY_STAGES = {"stages": [{"tasks": ["toy_quadratic"]}]}


def test_shipped_configs_load():
    hero = load("hero")
    assert hero.space.functions == HERO_FUNCTIONS and len(hero.space.functions) == 45
    assert hero.space.arguments == ("w", "g", "m", "v", "lr", "t")
    assert space_mod.start_program(hero.campaign.start, hero.space).args == hero.space.arguments
    quick = load(space_mod.SPACES_DIR / "quick.toml")
    assert quick.campaign.budget == 1500 and quick.campaign.seeds == (0, 1)
    assert quick.campaign.stages[0].grid == Grid((1 / 3, 1.0, 3.0), hurdle=-0.1,
                                                 gates=("quadratic_illcond", "quadratic_noisy"))
    assert set(quick.campaign.validation).isdisjoint(t for s in quick.campaign.stages for t in s.tasks)
    assert set(hero.campaign.validation).isdisjoint(t for s in hero.campaign.stages for t in s.tasks)


def test_dict_config_and_defaults():
    cfg = from_dict({"campaign": TOY_STAGES})
    assert cfg.campaign.population == 100 and cfg.space.max_length == 30
    assert cfg.replace_campaign(budget=7).campaign.budget == 7
    with pytest.raises(ValueError, match="campaign.tournament"):
        cfg.replace_campaign(population=3)


@pytest.mark.parametrize("table, where, allowed", [
    ({"campaign": {"populaton": 5, **TOY_STAGES}}, "campaign.populaton", "did you mean 'population'"),
    ({"space": {"functions": ["sqr"]}, "campaign": TOY_STAGES}, r"space.functions\[0\]", "did you mean 'sqrt'"),
    ({"space": {"max_length": 0}, "campaign": TOY_STAGES}, "space.max_length", ">= 1"),
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
                               "gate": 2.0}]}}, r"campaign.stages\[0\].gate", "-1.0 .. 1"),
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

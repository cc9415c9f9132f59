"""Instruction sets: an executable compiles the opcodes its programs can lower to, and only those."""

from __future__ import annotations

import numpy as np
import pytest

import proxy_tasks
from symopt.evaluation import evaluate
from symopt.evaluation.evaluator import instructions, interpreter
from symopt.evaluation.fitness import Grid
from symopt.evaluation.lowering import lower
from symopt.evaluation.opcodes import OPCODES, instruction_set
from symopt.evaluation.packing import pack
from symopt.programs import baselines
from symopt.programs.checker import calls
from symopt.programs.generate import numpy_chooser, random_program
from symopt.programs.parser import parse
from symopt.campaign.campaign import campaign_functions, executable_functions
from symopt.config.space import load
from symopt.config.start import start_program


def _opcodes(program) -> set[int]:
    return set(lower(program).main[:, 0].tolist())


def test_every_program_lowers_inside_the_instruction_set_of_what_it_calls():
    # the set's closure (reductions of scalars written out, superinstructions) is what the lowering emits
    rng = np.random.default_rng(0)
    programs = [baselines.get(n) for n in baselines.names() if baselines.is_program(n)]
    while len(programs) < 1500:
        programs.append(random_program(numpy_chooser(rng)))
    for p in programs:
        outside = _opcodes(p) - set(instruction_set(calls(p)).opcodes)
        assert not outside, (str(p), [OPCODES[i].name for i in outside])


def test_a_campaign_compiles_a_fraction_of_the_opcodes():
    cfg = load("quick")
    functions = campaign_functions(cfg, start_program(cfg.campaign.start, cfg.space))
    ops = instructions(functions)
    names = {OPCODES[i].fn for i in ops.opcodes}
    assert len(ops) < len(instruction_set()) == len(OPCODES)
    assert "orthogonalize" in names and "adamdir" in names  # the space's, and AdamW's fused direction
    assert not names & {"cos", "arctanh", "cube", "clip_by_global_norm"}  # not in quick.toml's space, nor AdamW
    assert instruction_set(None) is instruction_set() and instruction_set(["+", "*"]) is instruction_set(("*", "+"))
    with pytest.raises(ValueError, match=r"unknown functions \['nope'\]"):
        instruction_set(["+", "nope"])


def test_a_program_outside_the_set_is_refused_before_anything_compiles():
    program = parse("def p(g, m):\n    m = interpolate(m, g, 0.1)\n    return cos(m), m\n")
    with pytest.raises(ValueError, match=r"program 'p' calls \['cos'\], outside functions=\['\+', 'interpolate', 'sign'\]"):
        evaluate([program], "quadratic_illcond", steps=10, functions=["+", "sign", "interpolate"])
    low = lower(program)
    with pytest.raises(ValueError, match=r"program 'p' lowers to cos\(V\), outside this evaluation's instruction set"):
        pack([low], low.bucket, ops=instruction_set(["interpolate"]))
    # the branch numbers of a smaller set are its own: the same program packs to other numbers
    small = instruction_set(calls(program))
    code = pack([low], low.bucket, ops=small)["code"][0, :len(low.main), 0]
    assert [OPCODES[small.opcodes[b]].name for b in code] == [OPCODES[i].name for i in low.main[:, 0]]


@pytest.mark.slow
def test_a_smaller_set_trains_bit_for_bit_as_every_opcode_does():
    programs = [baselines.get(n) for n in ("lion", "adam", "momentum", "muon")]
    functions = frozenset().union(*(calls(p) for p in programs))
    grid = Grid((0.5, 1.0))
    every = evaluate(programs, "mlp_digits", steps=60, grid=grid)
    own = evaluate(programs, "mlp_digits", steps=60, grid=grid, functions=functions)
    for a, b in zip(every, own):
        assert a.fitness == b.fitness
        for x, y in zip(a.runs, b.runs):
            assert x.eval_loss == y.eval_loss and np.array_equal(x.losses, y.losses)
    keys = [key for key in interpreter(proxy_tasks.get("mlp_digits")).compiled_keys() if key[0] == "run"]
    assert {len(key[-1]) for key in keys} >= {len(OPCODES), len(instructions(functions))}  # two executables


def test_campaigns_reports_and_comparisons_share_two_sets():
    quick = load("quick")
    shared = executable_functions(["+", "*", "sign"])
    assert shared == campaign_functions(quick, start_program(quick.campaign.start, quick.space))
    assert executable_functions(calls(baselines.get("lion")) | calls(baselines.get("adamw"))) == shared
    assert executable_functions(["cos"]) is None  # outside quick.toml's space: every opcode
    hero = load("hero")
    assert campaign_functions(hero, start_program(hero.campaign.start, hero.space)) is None

"""Lowering (symopt/evaluation/lowering.py and dag.py), pass by pass: the DAG, scalar slots, the arguments'
rows, register allocation and the states' moves; then what whole programs lower to (folding, superinstructions,
buckets). That the lowered programs train as the programs do is tests/evaluation/test_interpreter.py's."""

import numpy as np
import pytest

from symopt.evaluation import opcodes
from symopt.evaluation.dag import Builder, Node, fold
from symopt.evaluation.lowering import (ROW_G, ROW_STATE, ROW_W, SLOT_CONST, SLOT_LR, Bucket, _move_states,
                                        _Rows, _scalar_slots, lower)
from symopt.evaluation.opcodes import OPCODES
from symopt.programs import baselines, parse
from symopt.programs.functions import Kind
from symopt.programs.program import Call, Const, Var
from tests.evaluation.cases import CUSTOM


@pytest.mark.parametrize("name, instructions", [("sgd", 1), ("momentum", 1), ("lion", 2), ("adamw", 3)])
def test_the_baselines_lower_to_their_superinstructions(name, instructions):
    lowered = lower(baselines.get(name))
    assert len(lowered.main) == instructions and lowered.main.dtype == np.int32


def test_the_dag_shares_subexpressions_and_folds_constants():
    b = Builder()
    env = {"g": b.add(("arg", "g"), Node(None, kind=Kind.TENSOR))}
    square = Call("square", (Var("g"),))
    one = b.expr(Call("*", (square, Const(2.0))), env)
    two = b.expr(Call("*", (square, Const(2.0))), env)
    assert one == two and len(b.nodes) == 4  # g, square(g), 2.0, the product: each once
    folded = b.expr(Call("+", (Const(1.0), Const(0.5))), env)
    assert b.nodes[folded].value == 1.5 and b.nodes[folded].uniform
    assert fold("sqrt", [4.0]) == 2.0 and fold("global_norm", [3.0]) is None  # a reduction is written out


def test_scalar_slots_hold_the_constants_then_the_uniform_results():
    nodes = [Node(None, kind=Kind.SCALAR, uniform=True, fixed=("S", SLOT_LR)), Node(None, value=0.9, uniform=True),
             Node(None, value=0.5, uniform=True), Node("*", (0, 1), uniform=True)]
    slot, consts, uniform = _scalar_slots(nodes, [0, 1, 2, 3])
    assert slot == {0: SLOT_LR, 1: SLOT_CONST, 2: SLOT_CONST + 1, 3: SLOT_CONST + 2}
    assert consts == [0.9, 0.5] and uniform == [("*", (SLOT_LR, SLOT_CONST), SLOT_CONST + 2)]


def test_a_new_state_takes_its_own_row_once_the_old_one_is_dead_and_temporaries_are_reused():
    # nodes: 0 the old state m, 1 a value read by 2 only, 2 the new m (returned as state 0), 3 the update
    nodes = [Node(None, kind=Kind.TENSOR, fixed=("V", ROW_STATE)), Node("square", (0,)), Node("+", (1, 0)),
             Node("sign", (2,))]
    rows = _Rows(nodes, [1, 2, 3], [3, 2], {0: ROW_STATE}, n_states=1)
    first = ROW_STATE + 1
    for pos, i in enumerate([1, 2, 3]):  # as _allocate does
        rows.release(nodes[i].args, pos)
        rows.row[i] = rows.alloc(i, pos)
    assert rows.row[1] == first  # the old state is still read by node 2: a temporary
    assert rows.row[2] == ROW_STATE  # node 2 read the old state last: the new state goes into its row
    assert rows.row[3] == first  # node 1's temporary, dead after node 2, again
    assert rows.next_row == first + 1


def test_swapped_states_are_staged_through_temporaries():
    lowered = lower(parse("def train(w, g, m, v, lr):\n    return g, v, m\n"))
    m, v = ROW_STATE, ROW_STATE + 1
    load, *moves = lowered.main[:, [0, 1, -1]].tolist()
    assert load == [opcodes.LOAD_G, 0, ROW_G] and lowered.update_row == ROW_G
    assert moves == [[opcodes.MOV, v, 5], [opcodes.MOV, m, 6], [opcodes.MOV, 5, m], [opcodes.MOV, 6, v]]


def test_moves_of_states_already_in_place_are_none():
    nodes = [Node(None, kind=Kind.TENSOR, fixed=("V", ROW_STATE)), Node("sign", (0,))]
    rows = _Rows(nodes, [1], [1, 0], {0: ROW_STATE}, n_states=1)
    rows.row[1] = rows.alloc(1, 0)
    main: list = []
    assert _move_states([1, 0], rows, main) == rows.row[1] and main == []


def test_the_weights_are_read_in_place_by_the_weight_step_only():
    lowered = lower(parse("def train(w, g, lr):\n    update = w * 0.1\n    return update\n"))
    assert [opcodes.LOAD_W, 0, ROW_W] in lowered.main[:, [0, 1, -1]].tolist()


# -- whole programs ----------------------------------------------------------------------------------


def test_dead_statements_are_removed_and_constants_folded():
    lean = lower(parse("def f(g, m):\n    m = interpolate(m, g, 0.1)\n    return m * 2.0, m\n"))
    fat = lower(parse("def f(g, m, t):\n    unused = exp(g) * t\n    c = 1.0 - 0.9\n    k = 2.0\n"
                      "    m = interpolate(m, g, c)\n    m2 = m * k\n    return m2, m\n"))
    assert len(fat) == len(lean) == 2
    assert not fat.uniform  # 1.0 - 0.9 folded, not computed per step


def test_uniform_scalars_run_on_the_host_and_reductions_of_scalars_are_arithmetic():
    low = lower(parse("def f(g, t):\n    c = 1.0 - power(0.9, t)\n    return g / c + global_norm(c) * g\n"))
    assert [fn for fn, _, _ in low.uniform] == ["power", "-", "square", "sqrt"]
    assert {OPCODES[row[0]].fn for row in low.main} <= {"/", "+", "*", "axpy", "ypax", "mov"}  # mov: loads g
    table = low.scalars(0.1, 0, 3)
    np.testing.assert_allclose(table[:, 1], [1, 2, 3])  # t is 1-based
    reduced = lower(parse("def f(g):\n    return g * global_norm(g)\n"))
    assert "global_norm" in {OPCODES[row[0]].fn for row in reduced.main}


def test_moment_updates_are_superinstructions():
    low = lower(parse(CUSTOM["moments"]))
    fns = [OPCODES[row[0]].fn for row in low.main]
    assert fns[:3] == ["mov", "axpby", "sqaxpby"] and "sqrtadd" in fns  # g * g has no gradient form: g is loaded
    adam = lower(parse("def adam(g, m, v):\n    m = interpolate(m, g, 0.1)\n"
                       "    v = (1.0 - 0.999) * square(g) + 0.999 * v\n    return m / (sqrt(v) + 1e-8), m, v\n"))
    assert len(adam) == 5  # interpolate, sqaxpby, sqrt, +, /


def test_adam_and_lion_directions_are_superinstructions_and_decay_joins_the_weight_step():
    def fns(program):
        return [OPCODES[row[0]].fn for row in lower(program).main]

    assert fns(baselines.get("adam")) == ["axpby", "sqaxpby", "adamdir"]
    assert fns(baselines.get("adamw")) == ["axpby", "sqaxpby", "adamdir"]  # + wd * w: in the weight step
    assert fns(baselines.get("lion")) == ["signaxpby", "axpby"]
    assert "rsqrtdiv" in fns(baselines.get("nadam"))  # its numerator is a sum: no adamdir
    assert lower(baselines.get("adamw")).decay_slot is not None and lower(baselines.get("adam")).decay_slot is None
    directions = fns(parse(CUSTOM["directions"]))
    assert {"adamdir", "rsqrtdiv", "signaxpby"} <= set(directions) and "ypax" in directions  # 0.1 * b, 0.01 * c
    assert lower(parse(CUSTOM["decay_first"])).decay_slot is not None  # w * s + x, the axpy form
    assert fns(parse(CUSTOM["decay_first"])) == ["interpolate"]
    # A value read twice is computed once, so it is not folded into its reader.
    twice = parse("def f(g, m, v, t):\n    m = interpolate(m, g, 0.1)\n    v = interpolate(v, square(g), 0.001)\n"
                  "    mh = divide(m, 1.0 - power(0.9, t))\n    u = divide(mh, sqrt(v + 0.0) + 1e-8)\n"
                  "    return u + mh, m, v\n")
    assert "rsqrtdiv" in fns(twice) and "adamdir" not in fns(twice) and "divide" in fns(twice)
    kept = parse("def f(w, g, m):\n    u = g + 0.01 * w\n    return u, u\n")  # the update is also a state
    assert lower(kept).decay_slot is None and [OPCODES[r[0]].name for r in lower(kept).main] == ["mov(W)", "ypax(G,V,S)"]


def test_the_gradient_is_read_in_place_and_loaded_only_for_other_readers():
    def names(text):
        return [OPCODES[r[0]].name for r in lower(parse(text) if isinstance(text, str) else text).main]

    assert names(baselines.get("adamw")) == ["axpby(G,S,V,S)", "sqaxpby(G,S,V,S)", "adamdir(V,S,V,S,S,S)"]
    assert names(baselines.get("sgd")) == ["mov(G)"]  # the update is the gradient itself: a row
    # exp has no gradient form: g is loaded once, and then read from its row by every reader
    assert names("def f(g, m):\n    m = interpolate(m, g, 0.1)\n    return exp(g) + m, m\n") == [
        "mov(G)", "interpolate(V,V,S)", "exp(V)", "+(V,V)"]


def test_buckets():
    assert lower(baselines.get("adam")).bucket == Bucket(32, 4)
    body = "\n".join(f"    m = m * {i + 2}.0 + exp(g)" for i in range(40))  # exp(g) computed once
    big = lower(parse(f"def f(g, m):\n{body}\n    return m, m\n"))
    assert len(big) == 42 and big.bucket == Bucket(64, 4)  # and a load of g (exp has no gradient form)
    assert lower(parse("def f(g, a, b, c, d, e):\n    return g, a, b, c, d, e\n")).bucket == Bucket(32, 8)

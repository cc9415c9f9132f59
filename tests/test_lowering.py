"""Lowering (symopt/evaluation/lowering.py and dag.py), pass by pass: the DAG, scalar slots, the arguments'
rows, register allocation and the states' moves. That the lowered programs train as the programs do is
tests/test_evaluation.py's."""

import numpy as np
import pytest

from symopt.evaluation import opcodes
from symopt.evaluation.dag import Builder, Node, fold
from symopt.evaluation.lowering import (ROW_G, ROW_STATE, ROW_W, SLOT_CONST, SLOT_LR, _move_states, _Rows,
                                        _scalar_slots, lower)
from symopt.programs import baselines, parse
from symopt.programs.functions import Kind
from symopt.programs.program import Call, Const, Var


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

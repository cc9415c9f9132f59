"""A program as arrays: opcodes, operand registers and a constant table.

:func:`lower` turns a checked :class:`~symopt.programs.program.Program` into a
:class:`Lowered` program that the compile-once interpreter runs as data:

* expressions are flattened into single-function instructions in SSA form, with
  common sub-expressions shared and every call on constants alone folded (in
  float64, as the reference's Python-float arithmetic does, then stored as
  float32); statements the returned values do not need (dead code) are dropped;
* each value gets a kind from the library's shape rules (those of
  :func:`symopt.programs.check`), which picks the opcode: a reduction of a
  tensor is a reduction opcode, while a reduction of a scalar is hero's plain
  arithmetic on it (``global_norm(x) = sqrt(square(x))``, ``dot(x, y) = x * y``,
  ...) and is written out as such;
* *uniform* scalars, those that depend only on constants, ``lr`` and ``t`` (the
  bias corrections ``1 - power(b1, t)``, ...), are the same for every parameter
  and known in advance: :meth:`Lowered.scalars` computes them on the host, with
  the library's NumPy forms in float32, for all steps of a run at once, and the
  interpreter reads them from scalar slots. Every other value, including a
  scalar computed from tensors (``global_norm(g)``), lives in a vector row and
  is computed at every step by the *main* instructions;
* a few idioms of moment updates become superinstructions (``(1 - b) * g + b * m``
  is one ``axpby``, Adam's bias-corrected direction one ``adamdir``; see
  :func:`_fuse`), so an Adam takes 3 instructions a step;
* an update ``x + wd * w`` (decoupled weight decay, the last term of AdamW,
  Lion and hero's programs) is left to the weight step, as an update ``x * lr``
  is (:func:`_absorb`);
* vector rows are reused once their value is dead, and a new state is computed
  straight into its slot's row where the old state is dead by then, so most
  programs need no moves at the end of a step.

Register layout (fixed, whatever the program): vector rows ``0`` w, ``1`` g,
``2`` zeros, ``3 ... 3+S-1`` the state slots, then temporaries; scalar slots
``0`` lr, ``1`` t, ``2`` the factor the update is multiplied by (lr for a
program without ``lr``, else 1), ``3`` the weight decay the weight step adds
(0 for most programs), then the constants, then uniform results. A main
instruction is the int32 row ``(opcode, a0 ... a5, destination row)``.

The main instructions end with the moves of new states into their rows (most
programs need none); then the interpreter sets
``w <- w - (row[update] + w * slot[3]) * slot[2]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from symopt.evaluation import opcodes
from symopt.evaluation.dag import Builder, Node
from symopt.evaluation.opcodes import OPCODES, G, S, V, W
from symopt.programs.checker import check
from symopt.programs.functions import FUNCTIONS, Kind
from symopt.programs.program import Program

ROW_W, ROW_G, ROW_ZERO, ROW_STATE = 0, 1, 2, 3
SLOT_LR, SLOT_T, SLOT_SCALE, SLOT_DECAY, SLOT_CONST = 0, 1, 2, 3, 4
FIELDS = 2 + opcodes.MAX_ARITY  # opcode, operands a0 ... a5, destination row
MIN_SIZE = 32  # one bucket holds every baseline: the interpreter's run time does not grow with it
MIN_STATES = 4
SLOTS_PER_INSTRUCTION = 8


@dataclasses.dataclass(frozen=True, order=True)
class Bucket:
    """Array shapes shared by every program in it: one compiled interpreter per task and bucket.

    ``size`` main instructions, ``states`` state slots, ``3 + states + size``
    vector rows and ``8 * size`` scalar slots. The interpreter loops over a
    program's own instructions only, so a bigger bucket costs memory, not time.
    """

    size: int
    states: int

    @property
    def rows(self) -> int:
        return ROW_STATE + self.states + self.size

    @property
    def slots(self) -> int:
        return SLOTS_PER_INSTRUCTION * self.size

    def holds(self, other: "Bucket") -> bool:
        return other.size <= self.size and other.states <= self.states

    def join(self, other: "Bucket") -> "Bucket":
        """The smallest bucket holding programs of both."""
        return Bucket(max(self.size, other.size), max(self.states, other.states))


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << max(n - 1, 0).bit_length())


@dataclasses.dataclass(frozen=True, eq=False)
class Lowered:
    """A program lowered to arrays; see the module docstring for the layout."""

    program: Program
    main: np.ndarray  # int32 [n_main, FIELDS]
    uniform: tuple[tuple[str, tuple[int, ...], int], ...]  # (function, operand slots, destination slot)
    consts: np.ndarray  # float32 [n_consts], in scalar slots SLOT_CONST ...
    n_slots: int  # scalar slots used
    n_rows: int  # vector rows used
    n_states: int
    update_row: int
    scale_by_lr: bool  # the weight step multiplies the update by lr (no lr argument, or an update x * lr)
    decay_slot: int | None = None  # the weight step adds w times this slot (an update x + w * s)

    @functools.cached_property
    def bucket(self) -> Bucket:
        need = max(len(self.main), self.n_rows - ROW_STATE - self.n_states,
                   math.ceil(self.n_slots / SLOTS_PER_INSTRUCTION), 1)
        return Bucket(_pow2(need, MIN_SIZE), _pow2(self.n_states, MIN_STATES))

    def __len__(self) -> int:
        """Instructions per step."""
        return len(self.main)

    def scalars(self, learning_rate, start: int, count: int) -> np.ndarray:
        """The scalar slots of steps ``start ... start+count-1`` (float32 [count, n_slots]).

        ``learning_rate`` is one rate for every step or a schedule: one rate per step (``[count]``).
        """
        tab = np.zeros((count, self.n_slots), np.float32)
        lr = np.broadcast_to(np.asarray(learning_rate, np.float32), (count,))
        tab[:, SLOT_LR] = lr
        tab[:, SLOT_T] = np.arange(start + 1, start + count + 1, dtype=np.float32)
        tab[:, SLOT_SCALE] = lr if self.scale_by_lr else 1.0
        tab[:, SLOT_CONST:SLOT_CONST + len(self.consts)] = self.consts
        with np.errstate(all="ignore"):
            for fn, args, dst in self.uniform:
                tab[:, dst] = FUNCTIONS[fn].elementwise(np, *(tab[:, a] for a in args))
        if self.decay_slot is not None:
            tab[:, SLOT_DECAY] = tab[:, self.decay_slot]
        return tab

    def listing(self) -> str:
        """The instructions as text, for debugging."""
        def operand(kind, a):
            return {V: f"r{a}", S: f"s{a}", G: "g", W: "w"}[kind]

        lines = ["# uniform scalars (host, all steps at once)"]
        lines += [f"s{dst} = {fn}({', '.join(f's{a}' for a in args)})" for fn, args, dst in self.uniform]
        lines.append("# main (every step)")
        for code, *args, dst in self.main.tolist():
            op = OPCODES[code]
            lines.append(f"r{dst} = {op.fn}({', '.join(operand(v, a) for v, a in zip(op.operands, args))})")
        decay = "" if self.decay_slot is None else f" + w * s{self.decay_slot}"
        lines.append(f"# w -= (r{self.update_row}{decay}) * s{SLOT_SCALE}")
        lines += [f"# s{SLOT_CONST + i} = {c!r}" for i, c in enumerate(self.consts.tolist())]
        return "\n".join(lines)



def lower(program: Program) -> Lowered:
    """Lower a program to interpreter arrays. Raises ProgramError if the program does not check."""
    check(program)
    b = Builder()
    env: dict[str, int] = {}
    states = program.state_args
    for arg in program.args:
        role = program.role(arg)
        if role == "weight":
            node = Node(None, kind=Kind.TENSOR, fixed=(W, ROW_W))
        elif role == "grad":
            node = Node(None, kind=Kind.TENSOR, fixed=(G, ROW_G))
        elif role == "lr":
            node = Node(None, kind=Kind.SCALAR, uniform=True, fixed=(S, SLOT_LR))
        elif role == "step":
            node = Node(None, kind=Kind.SCALAR, uniform=True, fixed=(S, SLOT_T))
        else:
            node = Node(None, kind=Kind.TENSOR, fixed=(V, ROW_STATE + states.index(arg)))
        env[arg] = b.add(("arg", arg), node)
    for stmt in program.body:
        env[stmt.target] = b.expr(stmt.value, env)
    returns = [b.expr(e, env) for e in program.returns]
    return _emit(program, b.nodes, returns, len(states))


def _live(nodes: list[Node], returns: list[int]) -> list[int]:
    """The nodes the returned values need (everything else is dead code), in topological order."""
    live: set[int] = set()
    stack = list(returns)
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(nodes[i].args)
    return sorted(live)  # node ids are already a topological order


def _fuse(nodes: list[Node], order: list[int], returns: list[int]) -> None:
    """Superinstructions for the idioms of moment updates (in place; see ``opcodes.FUSED``).

    ``x*s + y*t`` becomes ``axpby``, ``x*s + y`` ``axpy`` and ``y + x*s`` ``ypax``, where
    the products are read by the sum alone and are a vector times a uniform scalar;
    ``square(x)*s + y*t`` becomes ``sqaxpby`` and ``sqrt(x + s)`` ``sqrtadd``, where the
    inner value is read once; ``sign(axpby(...))`` becomes ``signaxpby`` where the sum is read
    once; ``divide(x, sqrtadd(y, u) + v)`` becomes ``rsqrtdiv`` and, where x
    and y are themselves divided by uniform scalars, ``adamdir``. A moment written
    ``(1 - b) * square(g) + b * v`` takes one instruction instead of four and Adam's direction
    one instead of five; the arithmetic and its order are unchanged.
    """
    uses: dict[int, int] = {}
    for i in order:
        for a in nodes[i].args:
            uses[a] = uses.get(a, 0) + 1
    for i in returns:
        uses[i] = uses.get(i, 0) + 1

    def scaled(i: int) -> tuple[int, int] | None:
        n = nodes[i]
        if n.fn == "*" and not n.uniform and uses.get(i) == 1 and nodes[n.args[1]].uniform \
                and not nodes[n.args[0]].uniform:
            return n.args
        return None

    for i in order:
        n = nodes[i]
        if n.fn != "+" or n.uniform:
            continue
        a, b = scaled(n.args[0]), scaled(n.args[1])
        if a and b:
            nodes[i] = Node("axpby", (*a, *b), kind=n.kind)
        elif a and not nodes[n.args[1]].uniform:
            nodes[i] = Node("axpy", (*a, n.args[1]), kind=n.kind)
        elif b and not nodes[n.args[0]].uniform:
            nodes[i] = Node("ypax", (n.args[0], *b), kind=n.kind)

    def single(i: int, fn: str) -> bool:
        return nodes[i].fn == fn and uses.get(i) == 1

    for i in order:
        n = nodes[i]
        if n.fn == "axpby":
            x, s_, y, t = n.args
            if single(x, "square"):
                nodes[i] = Node("sqaxpby", (nodes[x].args[0], s_, y, t), kind=n.kind)
            elif single(y, "square"):  # x*s + square(z)*t == square(z)*t + x*s exactly
                nodes[i] = Node("sqaxpby", (nodes[y].args[0], t, x, s_), kind=n.kind)
        elif n.fn == "sign" and single(n.args[0], "axpby"):
            nodes[i] = Node("signaxpby", nodes[n.args[0]].args, kind=n.kind)
        elif n.fn == "sqrt" and not n.uniform and single(n.args[0], "+"):
            x, s_ = nodes[n.args[0]].args
            if nodes[s_].uniform and not nodes[x].uniform:
                nodes[i] = Node("sqrtadd", (x, s_), kind=n.kind)

    def scaled_down(i: int) -> tuple[int, int] | None:
        """(x, s) where node i is ``divide(x, s)``, read once, of a vector by a uniform scalar."""
        n = nodes[i]
        if single(i, "divide") and not n.uniform and nodes[n.args[1]].uniform and not nodes[n.args[0]].uniform:
            return n.args
        return None

    for i in order:
        n = nodes[i]
        if n.fn != "divide" or n.uniform or nodes[n.args[0]].uniform or not single(n.args[1], "+"):
            continue
        x, d = n.args
        q, v = nodes[d].args
        if not nodes[v].uniform or not single(q, "sqrtadd"):
            continue
        y, u = nodes[q].args
        a, b = scaled_down(x), scaled_down(y)
        if a and b:
            nodes[i] = Node("adamdir", (*a, *b, u, v), kind=n.kind)
        else:
            nodes[i] = Node("rsqrtdiv", (x, y, u, v), kind=n.kind)


def _update_alone(nodes: list[Node], returns: list[int], fns: tuple[str, ...]) -> bool:
    """Whether the update is a call of one of ``fns`` that nothing else reads (no state, no instruction)."""
    i = returns[0]
    return nodes[i].fn in fns and returns.count(i) == 1 and not any(i in nodes[j].args for j in _live(nodes, returns))


def _lr_as_scale(nodes: list[Node], returns: list[int]) -> bool:
    """An update ``x * lr`` (hero's last statement) becomes ``x``, scaled by lr in the weight step.

    The step then computes ``w - x * lr`` as a program without ``lr`` does, bit for bit, and
    saves an instruction. Applies when the product is used nowhere else and ``x`` is no
    uniform scalar. Returns whether it applied (``returns[0]`` is then ``x``).
    """
    if not _update_alone(nodes, returns, ("*",)):
        return False
    n = nodes[returns[0]]
    for x, lr in (n.args, n.args[::-1]):
        if nodes[lr].fixed == (S, SLOT_LR) and not nodes[x].uniform:
            returns[0] = x
            return True
    return False


def _absorb(nodes: list[Node], returns: list[int]) -> int | None:
    """An update ``x + w * s`` (``ypax`` or ``axpy`` of the weights by a uniform scalar) becomes ``x``, the weight
    step adding ``w * s``: the same arithmetic, one instruction less. Applies when the sum is used
    nowhere else and ``x`` is no uniform scalar. Returns the node of ``s`` (``returns[0]`` is then ``x``)."""
    if not _update_alone(nodes, returns, ("ypax", "axpy")):
        return None
    n = nodes[returns[0]]
    x, w, s = n.args if n.fn == "ypax" else (n.args[2], n.args[0], n.args[1])  # w * s + x == x + w * s exactly
    if nodes[w].fixed != (W, ROW_W) or nodes[x].uniform:
        return None
    returns[0] = x
    return s


def _emit(program: Program, nodes: list[Node], returns: list[int], n_states: int) -> Lowered:
    """The DAG's live nodes as interpreter arrays, in passes: the superinstructions and the weight step's
    share (:func:`_fuse`, :func:`_absorb`), scalar slots (:func:`_scalar_slots`), the gradient and the
    weights in place or loaded (:func:`_place_arguments`), a row for each main instruction (:class:`_Rows`,
    :func:`_allocate`) and the states' moves at the end (:func:`_move_states`)."""
    returns = list(returns)
    scale_by_lr = not program.has_lr or _lr_as_scale(nodes, returns)
    _fuse(nodes, _live(nodes, returns), returns)
    decay = _absorb(nodes, returns)
    order = _live(nodes, returns if decay is None else [*returns, decay])  # the decay keeps its slot
    slot, consts, uniform = _scalar_slots(nodes, order)
    main_nodes = [i for i in order if nodes[i].fn is not None and not nodes[i].uniform]
    virtual, row, main = _place_arguments(nodes, order, main_nodes, returns, slot)
    rows = _Rows(nodes, main_nodes, returns, row, n_states)
    main += _allocate(nodes, main_nodes, returns, slot, virtual, rows)
    update_row = _move_states(returns, rows, main)

    with np.errstate(over="ignore"):  # a folded constant beyond float32 is inf, as in float32 arithmetic
        const_table = np.asarray(consts, np.float32)
    return Lowered(program=program, main=np.asarray(main, np.int32).reshape(-1, FIELDS), uniform=tuple(uniform),
                   consts=const_table, n_slots=SLOT_CONST + len(consts) + len(uniform), n_rows=rows.next_row,
                   n_states=n_states, update_row=update_row, scale_by_lr=scale_by_lr,
                   decay_slot=None if decay is None else slot[decay])


def _scalar_slots(nodes: list[Node], order: list[int]) -> tuple[dict[int, int], list[float], list[tuple]]:
    """Scalar slots: lr, t, scale, the constants, then uniform results (computed on the host).

    Returns (node -> slot, the constants in slot order, the uniform instructions ``(fn, argument slots,
    slot)``)."""
    slot: dict[int, int] = {}
    consts = []
    for i in order:
        n = nodes[i]
        if n.fixed is not None and n.fixed[0] == S:
            slot[i] = n.fixed[1]
        elif n.fn is None and n.fixed is None:
            slot[i] = SLOT_CONST + len(consts)
            consts.append(n.value)
    uniform = []
    for i in order:
        n = nodes[i]
        if n.fn is not None and n.uniform:
            slot[i] = SLOT_CONST + len(consts) + len(uniform)
            uniform.append((n.fn, tuple(slot[a] for a in n.args), slot[i]))
    return slot, consts, uniform


def _place_arguments(nodes: list[Node], order: list[int], main_nodes: list[int], returns: list[int],
                     slot: dict[int, int]) -> tuple[dict[int, str], dict[int, int], list[list[int]]]:
    """The vector arguments' rows. The gradient is read in place where every reader's opcode has that form,
    else loaded into its row first; so are the weights, which only the weight step reads in place.

    Returns (node -> G for a gradient read in place, node -> row, the loads)."""
    returned = set(returns)
    virtual: dict[int, str] = {}  # node -> G, read in place
    main: list[list[int]] = []
    row: dict[int, int] = {}
    for i in order:
        n = nodes[i]
        if n.fixed is None or n.fixed[0] == S:
            continue
        kind, r = n.fixed
        if kind == G and i not in returned and all(
                _layout(nodes[j], slot, {i: G}) in opcodes.INDEX for j in main_nodes if i in nodes[j].args):
            virtual[i] = G
            continue
        row[i] = r
        if kind in (G, W) and (i in returned or any(i in nodes[j].args for j in main_nodes)):
            main.append(_move(opcodes.LOAD_G if kind == G else opcodes.LOAD_W, 0, r))
    return virtual, row, main


class _Rows:
    """Register allocation of the vector rows: which node lives in which row, the dead temporaries to reuse,
    and each node's last reader among the main instructions (a returned node lives to the end)."""

    def __init__(self, nodes: list[Node], main_nodes: list[int], returns: list[int], row: dict[int, int],
                 n_states: int):
        self.row = row
        self.returned = set(returns)
        self.state_of: dict[int, int] = {}  # node -> the first state slot that returns it
        for j, i in enumerate(returns[1:]):
            self.state_of.setdefault(i, j)
        self.end = len(main_nodes) + 1
        self.last_use: dict[int, int] = {}
        for pos, i in enumerate(main_nodes):
            for a in nodes[i].args:
                self.last_use[a] = pos
        for i in returns:
            self.last_use[i] = self.end
        self.holder = {r: i for i, r in row.items()}  # vector row -> the node that lives there
        self.first_temp = ROW_STATE + n_states
        self.free: list[int] = []  # dead temporaries, reusable
        self.next_row = self.first_temp

    def release(self, args: tuple[int, ...], pos: int) -> None:
        """Temporaries whose last reader is the instruction at ``pos`` are free (its result may reuse one: an
        instruction reads its operands before its result is written)."""
        for a in set(args):
            r = self.row.get(a)
            if r is not None and r >= self.first_temp and self.last_use.get(a) == pos and self.holder.get(r) == a:
                self.free.append(r)
        self.free.sort()

    def alloc(self, node_id: int, pos: int) -> int:
        """A row for a new value: its state slot's row if the old state is dead, else a temporary."""
        j = self.state_of.get(node_id)
        if j is not None:
            r = ROW_STATE + j
            old = self.holder.get(r)
            if old is None or (self.last_use.get(old, -1) <= pos and old not in self.returned):
                self.holder[r] = node_id
                return r
        if self.free:
            r = self.free.pop(0)
        else:
            r = self.next_row
            self.next_row += 1
        self.holder[r] = node_id
        return r

    def temp(self) -> int:
        """A temporary row no value lives in now."""
        tmp = self.free.pop(0) if self.free else self.next_row
        self.next_row = max(self.next_row, tmp + 1)
        return tmp


def _allocate(nodes: list[Node], main_nodes: list[int], returns: list[int], slot: dict[int, int],
              virtual: dict[int, str], rows: _Rows) -> list[list[int]]:
    """The main instructions, each writing a row :class:`_Rows` gives it; then the returned uniform scalars
    (constants, lr, t, ...) broadcast into rows."""
    main = []
    row = rows.row
    for pos, i in enumerate(main_nodes):
        n = nodes[i]
        rows.release(n.args, pos)
        row[i] = rows.alloc(i, pos)
        main.append(_instr(n, slot, row, virtual, row[i]))
    for i in dict.fromkeys(returns):
        if i not in row:
            row[i] = rows.alloc(i, rows.end)
            main.append(_move(opcodes.BCAST, slot[i], row[i]))
    return main


def _move_states(returns: list[int], rows: _Rows, main: list[list[int]]) -> int:
    """State copies: moves into the state rows at the end of the main instructions, in order (appended to
    ``main``). A source that is a state row (which an earlier move may overwrite) is first moved to a fresh
    temporary, and so is an update that lives in a state row that a move overwrites. Returns the update's
    row."""
    row = rows.row
    update_row = row[returns[0]]
    moves = [(row[i], ROW_STATE + j) for j, i in enumerate(returns[1:]) if row[i] != ROW_STATE + j]
    targets = {dst for _, dst in moves}

    def to_temp(src: int) -> int:
        tmp = rows.temp()
        main.append(_move(opcodes.MOV, src, tmp))
        return tmp

    if update_row in targets:
        update_row = to_temp(update_row)
    staged = {src: to_temp(src) for src, _ in moves if ROW_STATE <= src < rows.first_temp}
    for src, dst in moves:
        main.append(_move(opcodes.MOV, staged.get(src, src), dst))
    return update_row


def _layout(n: Node, slot: dict[int, int], virtual: dict[int, str]) -> tuple[str, tuple[str, ...]]:
    """(function, operand kinds) of a node's instruction: scalar slots, the values read in place, rows."""
    return n.fn, tuple(S if a in slot else virtual.get(a, V) for a in n.args)


def _instr(n: Node, slot: dict[int, int], row: dict[int, int], virtual: dict[int, str], dst: int) -> list[int]:
    fn, layout = _layout(n, slot, virtual)
    operands = [row[a] if kind == V else slot[a] if kind == S else 0 for a, kind in zip(n.args, layout)]
    return [opcodes.opcode(fn, layout), *operands, *[0] * (opcodes.MAX_ARITY - len(operands)), dst]


def _move(code: int, src: int, dst: int) -> list[int]:
    """A one-operand instruction (``bcast`` or ``mov``) from ``src`` to row ``dst``."""
    return [code, src, *[0] * (opcodes.MAX_ARITY - 1), dst]

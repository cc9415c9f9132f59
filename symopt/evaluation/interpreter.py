"""The compile-once training machine: a proxy task's training loop around a program interpreter.

One :class:`Interpreter` per proxy task holds compiled executables, each
compiled once and reused for every program: program arrays (opcodes, operand
registers, scalar slots; see :mod:`symopt.evaluation.lowering`) are runtime
arguments, never static. A *run* executable trains K programs at once
through a plan of chunks (``lax.scan`` of ``length`` steps each, in a
``lax.while_loop``): after every chunk a slot whose losses diverged goes idle,
the loop ends early once every slot has, and at the end of the plan the eval
losses are computed, all in one call. A caller with a time limit calls it one
chunk at a time (the same executable, so the same results) and checks the
clock between. Executables are keyed by (bucket, chunk plan, K, mode, instruction set).

One step: the gradient of the task's loss at the weights (taken with respect to
the parameter tree, then flattened); the program's main instructions run
(``lax.fori_loop`` over its own instructions, ``lax.switch`` over opcodes: each
branch reads its operand rows, scalar slots and the gradient in place and
returns one row, written back with a dynamic update, so the register file is
updated in place and never copied); then
``w <- w - (row[update] + w * slot[3]) * slot[2]``. The weights and the gradient
are held apart from the register file, and written into it (rows 0 and 1) only
by a program's own loads (``mov(W)``, ``mov(G)``): were the weights a row of
it, XLA would copy the whole file at every step while the gradient reads them,
and writing both at every step costs about a microsecond per step on
``mlp_digits``. State rows persist from step to step; the scalar slots of each
step (lr, t, constants, uniform scalars) come in as a ``[K, length, slots]``
table computed on the host.

Modes:

* ``single``: one program (K = 1), no batching;
* ``loop``: K programs; the gradient is vmapped over them (one batched model
  evaluation per step) and the interpreter steps through the programs in turn,
  each dispatching only its own opcodes. The batched mode for CPUs;
* ``select``: ``jax.vmap`` of the whole single-program machine. The opcode
  switch becomes a select over all opcodes (every branch computed for every
  program): what a GPU or TPU wants, many times slower on a CPU.

The parameters are one float32 vector (the task's leaves flattened in
``jax.tree_util`` order, as ``jax.flatten_util.ravel_pytree`` does), with a
segment id per entry naming its leaf, for the per-tensor ``norm``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from symopt.evaluation import compile_cache
from symopt.evaluation.fitness import diverged
from symopt.evaluation.lowering import FIELDS, ROW_ZERO, SLOT_DECAY, SLOT_SCALE, Bucket
from symopt.evaluation.opcodes import FUSED, OPCODES, G, S, V, InstructionSet, Opcode, instruction_set
from symopt.programs.functions import FUNCTIONS
from symopt.programs.spaces import FlatSpace

MODES = ("single", "loop", "select")
PROGRAM_ARGS = ("code", "n", "scalars", "update_row")


class RunState(NamedTuple):
    """K training runs between calls of a run executable (:meth:`Interpreter.run`)."""

    w: Any  # [K, P] weights
    rf: Any  # [K, rows, P] register files (state rows persist across steps)
    losses: Any  # [K, steps] train losses; a slot's are valid up to its steps_run
    active: Any  # [K] bool: training (not diverged, not an idle slot)
    steps_run: Any  # [K] int32


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """How a task's parameter tree maps to one flat float32 vector."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    segments: np.ndarray  # int32 [size]: the leaf of each entry

    @property
    def size(self) -> int:
        return int(self.segments.size)

    @property
    def n_segments(self) -> int:
        return len(self.shapes)

    def unravel(self, flat: jax.Array) -> Any:
        leaves, start = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            leaves.append(flat[start:start + n].reshape(shape))
            start += n
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def ravel(self, tree: Any) -> jax.Array:
        return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def layout_of(task) -> Layout:
    shapes = jax.eval_shape(task.init, jax.random.PRNGKey(0))
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    bad = [x.dtype for x in leaves if x.dtype != jnp.float32]
    if bad:
        raise TypeError(f"task {task.name!r}: the interpreter trains float32 parameters, got {bad}")
    segments = np.concatenate([np.full(math.prod(x.shape), i, np.int32) for i, x in enumerate(leaves)])
    return Layout(treedef, tuple(tuple(x.shape) for x in leaves), segments)


def _operand(rf, sf, k, index, kind: str, size: int, g=None, w=None):
    if kind == V:
        return lax.dynamic_slice(rf, (k, index, 0), (1, 1, size)).reshape(size)
    if kind == S:
        return sf[index]
    return g if kind == G else w


def _branches(layout: Layout, ops: InstructionSet) -> list[Callable]:
    """One function per opcode of ``ops``: (rf [K, rows, P], sf [slots], k, a [MAX_ARITY], g [P], w [P]) -> the
    result row [P]."""
    size = layout.size
    space = FlatSpace(jnp, jnp.asarray(layout.segments), layout.n_segments, layout.shapes)

    def make(op: Opcode):
        fn = FUNCTIONS.get(op.fn)

        def branch(rf, sf, k, a, g, w):
            vals = [_operand(rf, sf, k, a[i], kind, size, g, w) for i, kind in enumerate(op.operands)]
            if op.fn in ("bcast", "mov"):
                out = vals[0]
            elif op.fn in FUSED:
                out = FUSED[op.fn][1](*vals)
            else:
                out = fn.apply(space, *vals)
            return jnp.broadcast_to(jnp.asarray(out, jnp.float32), (size,))

        return branch

    return [make(OPCODES[i]) for i in ops.opcodes]


class Interpreter:
    """The compiled executables of one proxy task (init, eval, training chunks), built on first use."""

    def __init__(self, task):
        compile_cache.enable()
        self.task = task
        self.layout = layout_of(task)
        self._lock = threading.Lock()
        self._compiled: dict[tuple, Any] = {}
        self._inits: dict[int, tuple[np.ndarray, Any]] = {}

    # -- compiled executables --------------------------------------------------------------

    def _get(self, key: tuple, build: Callable[[], Any]):
        with self._lock:
            exe = self._compiled.get(key)
            if exe is None:
                exe = self._compiled[key] = build()
            return exe

    def compiled_keys(self) -> list[tuple]:
        return list(self._compiled)

    def run(self, bucket: Bucket, plan: tuple[int, ...], k: int, mode: str, ops: InstructionSet | None = None):
        """The compiled run: (state, code, n, scalars, update_row, k_data, c0, c1) -> (state, evals [K]).

        Its opcode switch holds the instruction set ``ops`` (default: every opcode); ``code`` names
        them by branch (:meth:`InstructionSet.local`).

        Trains chunks ``c0 .. c1-1`` of ``plan`` (chunk lengths: equal ones, then at most one
        shorter, as ``evaluate.chunk_plan`` makes them), stopping early when no slot is active.
        ``state`` is a :class:`RunState` (see :meth:`start`), ``scalars`` [K, steps, slots] the
        scalar table of every step, ``k_data`` [K, 2] each slot's data key (slots may train
        different seeds). ``evals`` are the eval losses after the plan's last chunk (NaN before
        it, and when no slot is active).
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {MODES}")
        if mode == "single" and k != 1:
            raise ValueError("mode 'single' runs one program")
        plan = tuple(int(x) for x in plan)
        full = plan[0] if plan else 0
        if not plan or min(plan) < 1 or any(x != full for x in plan[:-1]) or plan[-1] > full:
            raise ValueError(f"chunk plan {plan}: equal chunks, then at most one shorter")
        ops = ops or instruction_set()
        return self._get(("run", bucket, plan, k, mode, ops), lambda: self._compile_run(bucket, plan, k, mode, ops))

    def has_run(self, bucket: Bucket, plan: tuple[int, ...], k: int, mode: str, ops: InstructionSet | None = None
                ) -> bool:
        """Whether :meth:`run` of these arguments is compiled in this process already."""
        with self._lock:
            return ("run", bucket, tuple(int(x) for x in plan), k, mode, ops or instruction_set()) in self._compiled

    def start(self, bucket: Bucket, steps: int, w: np.ndarray, n_active: int) -> RunState:
        """A fresh :class:`RunState`: weights ``w`` [K, P], state rows at zero, the first
        ``n_active`` slots active (the rest idle)."""
        k = w.shape[0]
        return RunState(w=np.asarray(w, np.float32), rf=np.zeros((k, bucket.rows, self.layout.size), np.float32),
                        losses=np.zeros((k, steps), np.float32), active=np.arange(k) < n_active,
                        steps_run=np.zeros(k, np.int32))

    def eval_loss(self, k: int):
        """The compiled eval: flat params [K, P] -> eval losses [K]."""
        def build():
            fn = jax.vmap(lambda flat: self.task.eval_loss(self.layout.unravel(flat)))
            return jax.jit(fn).lower(jax.ShapeDtypeStruct((k, self.layout.size), jnp.float32)).compile()
        return self._get(("eval", k), build)

    def _init_exe(self):
        def build():
            def init(key):
                k_init, k_data = jax.random.split(key)
                return self.layout.ravel(self.task.init(k_init)), k_data
            return jax.jit(init).lower(jax.ShapeDtypeStruct((2,), jnp.uint32)).compile()
        return self._get(("init",), build)

    def init(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat initial params as float32 numpy [P], data key as uint32 [2]) for a seed, as
        ``proxy_tasks.train`` derives them."""
        with self._lock:
            cached = self._inits.get(seed)
        if cached is None:
            key = jax.random.PRNGKey(seed)
            if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
                key = jax.random.key_data(key)
            key = np.asarray(key, np.uint32)
            flat, k_data = self._init_exe()(key)
            cached = (np.asarray(flat), np.asarray(k_data, np.uint32))
            with self._lock:
                self._inits[seed] = cached
        return cached

    # -- building --------------------------------------------------------------------------------

    def _compile_run(self, bucket: Bucket, plan: tuple[int, ...], k: int, mode: str, ops: InstructionSet):
        length = plan[0]
        n_full = plan.count(length)
        tail = plan[-1] if len(plan) > n_full else 0
        chunks = {n: self._k_chunk_fn(bucket, n, k, mode, ops) for n in {length, tail} - {0}}
        eval_losses = jax.vmap(lambda flat: self.task.eval_loss(self.layout.unravel(flat)))

        def advance(state: RunState, n: int, i0, prog) -> RunState:
            """One chunk of n steps from step i0; a slot that diverged in it goes idle."""
            code, count, scalars, update_row, k_data = prog
            on = state.active
            # An idle slot runs no instructions and steps by zero: its weights stay put.
            sf = jnp.where(on[:, None, None], lax.dynamic_slice_in_dim(scalars, i0, n, axis=1), 0.0)
            w, rf, losses = chunks[n](state.w, state.rf, code, jnp.where(on, count, 0), sf,
                                      jnp.where(on, update_row, ROW_ZERO), k_data, i0)
            buf = lax.dynamic_update_slice_in_dim(state.losses, losses, i0, axis=1)
            stop = diverged(losses, buf[:, 0], jnp)
            return RunState(w, rf, buf, on & ~stop, jnp.where(on, i0 + n, state.steps_run))

        def run(state, code, count, scalars, update_row, k_data, c0, c1):
            prog = (code, count, scalars, update_row, k_data)

            def more(carry):
                c, st = carry
                return (c < jnp.minimum(c1, n_full)) & jnp.any(st.active)

            def chunk(carry):
                c, st = carry
                return c + 1, advance(st, length, c * length, prog)

            _, state = lax.while_loop(more, chunk, (c0, state))
            if tail:
                state = lax.cond((c1 > n_full) & jnp.any(state.active),
                                 lambda st: advance(st, tail, jnp.int32(n_full * length), prog), lambda st: st, state)
            evals = lax.cond((c1 >= len(plan)) & jnp.any(state.active), eval_losses,
                             lambda w: jnp.full((k,), jnp.nan, jnp.float32), state.w)
            return state, evals

        i32, f32 = jnp.int32, jnp.float32
        size, steps = self.layout.size, sum(plan)
        specs = [
            RunState(w=jax.ShapeDtypeStruct((k, size), f32), rf=jax.ShapeDtypeStruct((k, bucket.rows, size), f32),
                     losses=jax.ShapeDtypeStruct((k, steps), f32), active=jax.ShapeDtypeStruct((k,), jnp.bool_),
                     steps_run=jax.ShapeDtypeStruct((k,), i32)),
            jax.ShapeDtypeStruct((k, bucket.size, FIELDS), i32),  # code
            jax.ShapeDtypeStruct((k,), i32),  # n
            jax.ShapeDtypeStruct((k, steps, bucket.slots), f32),  # scalars
            jax.ShapeDtypeStruct((k,), i32),  # update_row
            jax.ShapeDtypeStruct((k, 2), jnp.uint32),  # k_data
            jax.ShapeDtypeStruct((), i32),  # c0
            jax.ShapeDtypeStruct((), i32),  # c1
        ]
        return jax.jit(run, donate_argnums=(0,)).lower(*specs).compile()

    def _k_chunk_fn(self, bucket: Bucket, length: int, k: int, mode: str, ops: InstructionSet):
        """(w, rf, code, n, scalars [K, length, slots], update_row, k_data, i0) -> (w, rf, losses [K, length])."""
        if mode != "select":
            return self._chunk_fn(bucket, length, k, mode, ops)
        one = self._chunk_fn(bucket, length, 1, "single", ops)
        axes = (0,) * (3 + len(PROGRAM_ARGS)) + (None,)

        def fn(w, rf, *args):
            *prog, i0 = args
            lifted = [x[:, None] for x in (w, rf, *prog)]
            w1, rf1, losses = jax.vmap(one, in_axes=axes)(*lifted, i0)
            return w1[:, 0], rf1[:, 0], losses[:, 0]
        return fn

    def _chunk_fn(self, bucket: Bucket, length: int, k: int, mode: str, ops: InstructionSet):
        task, lay = self.task, self.layout
        size = lay.size
        branches = _branches(lay, ops)
        tree_value_and_grad = jax.value_and_grad(task.loss)

        def value_and_grad(flat, batch):
            # The gradient with respect to the leaves, flattened after: XLA fuses this better
            # than the gradient with respect to the flat vector (through the slicing).
            loss, grads = tree_value_and_grad(lay.unravel(flat), batch)
            return loss, lay.ravel(grads)

        def run_program(rf, sf, p, code, n, update_row, w, g):
            """One program's instructions on its weights w and gradient g; returns its new weights and
            the register file."""
            def instruction(j, rf):
                o = code[j]
                row = lax.switch(o[0], branches, rf, sf, p, o[1:FIELDS - 1], g, w)
                return lax.dynamic_update_slice(rf, row.reshape(1, 1, size), (p, o[FIELDS - 1], 0))

            rf = lax.fori_loop(0, n, instruction, rf)
            return w - (_operand(rf, sf, p, update_row, V, size) + w * sf[SLOT_DECAY]) * sf[SLOT_SCALE], rf

        def chunk(w, rf, code, n, scalars, update_row, k_data, i0):
            steps = i0 + jnp.arange(length, dtype=jnp.int32)

            def step(carry, xs):
                # The weights and the gradient are held apart from the register file: instructions
                # read them in place, and the register file is updated in place (never copied).
                w, rf = carry
                i, sfs = xs
                if mode == "single":
                    loss, g = value_and_grad(w[0], task.batch(k_data[0], i))
                    loss, g = loss[None], g[None]
                else:
                    batch = jax.vmap(task.batch, in_axes=(0, None))(k_data, i)
                    loss, g = jax.vmap(value_and_grad)(w, batch)
                if k == 1:
                    w_new, rf = run_program(rf, sfs[0], 0, code[0], n[0], update_row[0], w[0], g[0])
                    w = w_new[None]
                else:
                    def one(p, carry):
                        w, rf = carry
                        w_p, rf = run_program(rf, sfs[p], p, code[p], n[p], update_row[p],
                                              lax.dynamic_index_in_dim(w, p, keepdims=False),
                                              lax.dynamic_index_in_dim(g, p, keepdims=False))
                        return lax.dynamic_update_slice(w, w_p[None], (p, 0)), rf

                    w, rf = lax.fori_loop(0, k, one, (w, rf))
                return (w, rf), loss

            (w, rf), losses = lax.scan(step, (w, rf), (steps, jnp.swapaxes(scalars, 0, 1)))
            return w, rf, losses.T

        return chunk

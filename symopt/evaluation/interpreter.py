"""The compile-once training machine: a proxy task's training loop around a program interpreter.

One :class:`Interpreter` per proxy task holds compiled executables, each
compiled once and reused for every program: program arrays (opcodes, operand
registers, scalar slots; see :mod:`symopt.evaluation.lowering`) are runtime
arguments, never static. A *chunk* executable trains ``length`` steps
(``lax.scan``) for K programs at once and returns the weights, the register
files and the train losses; the caller checks for divergence and the time
limit between chunks. Executables are keyed by (bucket, chunk length, K, mode).

One step: the gradient of the task's loss at the weights (taken with respect to
the parameter tree, then flattened) and the weights go to rows 1 and 0 of the
register file; the program's main instructions run (``lax.fori_loop`` over its
own instructions, ``lax.switch`` over opcodes: each branch reads its operand
rows and scalar slots in place and returns one row, written back with a dynamic
update, so the register file is updated in place and never copied); then
``w <- w - row[update] * slot[2]``. The weights are carried apart from the
register file: were they a row of it, XLA would copy the whole file at every
step while the gradient reads them. State rows persist from step to step; the
scalar slots of each step (lr, t, constants, uniform scalars) come in as a
``[K, length, slots]`` table computed on the host.

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
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from symopt.evaluation.lowering import FIELDS, ROW_G, ROW_W, SLOT_SCALE, Bucket
from symopt.evaluation.opcodes import FUSED, OPCODES, Opcode
from symopt.programs.functions import FUNCTIONS, FlatSpace

MODES = ("single", "loop", "select")
PROGRAM_ARGS = ("code", "n", "scalars", "update_row")


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


def _operand(rf, sf, k, index, is_vector: bool, size: int):
    if is_vector:
        return lax.dynamic_slice(rf, (k, index, 0), (1, 1, size)).reshape(size)
    return sf[index]


def _branches(layout: Layout) -> list[Callable]:
    """One function per opcode: (rf [K, rows, P], sf [slots], k, a [4]) -> the result row [P]."""
    size = layout.size
    space = FlatSpace(jnp, jnp.asarray(layout.segments), layout.n_segments)

    def make(op: Opcode):
        fn = FUNCTIONS.get(op.fn)

        def branch(rf, sf, k, a):
            vals = [_operand(rf, sf, k, a[i], v, size) for i, v in enumerate(op.operands)]
            if op.fn in ("bcast", "mov"):
                out = vals[0]
            elif op.fn in FUSED:
                out = FUSED[op.fn][1](*vals)
            else:
                out = fn.apply(space, *vals)
            return jnp.broadcast_to(jnp.asarray(out, jnp.float32), (size,))

        return branch

    return [make(op) for op in OPCODES]


class Interpreter:
    """The compiled executables of one proxy task (init, eval, training chunks), built on first use."""

    def __init__(self, task):
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

    def chunk(self, bucket: Bucket, length: int, k: int, mode: str):
        """The compiled chunk: (w, rf, code, n, scalars, update_row, k_data, i0) -> (w, rf, losses [K, length]).

        ``w`` [K, P] are the weights, ``rf`` [K, rows, P] the register files (their state rows
        persist across steps), ``k_data`` [K, 2] each slot's data key (slots may train different
        seeds) and ``i0`` the first step.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {MODES}")
        if mode == "single" and k != 1:
            raise ValueError("mode 'single' runs one program")
        return self._get(("chunk", bucket, length, k, mode), lambda: self._compile_chunk(bucket, length, k, mode))

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

    def registers(self, bucket: Bucket, k: int) -> np.ndarray:
        """Fresh register files [K, rows, P] (the state slots start at zero)."""
        return np.zeros((k, bucket.rows, self.layout.size), np.float32)

    # -- building --------------------------------------------------------------------------------

    def _compile_chunk(self, bucket: Bucket, length: int, k: int, mode: str):
        if mode == "select":
            one = self._chunk_fn(bucket, length, 1, "single")
            axes = (0,) * (3 + len(PROGRAM_ARGS)) + (None,)

            def fn(w, rf, *args):
                *prog, i0 = args
                lifted = [x[:, None] for x in (w, rf, *prog)]
                w1, rf1, losses = jax.vmap(one, in_axes=axes)(*lifted, i0)
                return w1[:, 0], rf1[:, 0], losses[:, 0]
        else:
            fn = self._chunk_fn(bucket, length, k, mode)
        i32, f32 = jnp.int32, jnp.float32
        specs = [
            jax.ShapeDtypeStruct((k, self.layout.size), f32),  # w
            jax.ShapeDtypeStruct((k, bucket.rows, self.layout.size), f32),  # rf
            jax.ShapeDtypeStruct((k, bucket.size, FIELDS), i32),  # code
            jax.ShapeDtypeStruct((k,), i32),  # n
            jax.ShapeDtypeStruct((k, length, bucket.slots), f32),  # scalars
            jax.ShapeDtypeStruct((k,), i32),  # update_row
            jax.ShapeDtypeStruct((k, 2), jnp.uint32),  # k_data
            jax.ShapeDtypeStruct((), i32),  # i0
        ]
        return jax.jit(fn, donate_argnums=(0, 1)).lower(*specs).compile()

    def _chunk_fn(self, bucket: Bucket, length: int, k: int, mode: str):
        task, lay = self.task, self.layout
        size = lay.size
        branches = _branches(lay)
        tree_value_and_grad = jax.value_and_grad(task.loss)

        def value_and_grad(flat, batch):
            # The gradient with respect to the leaves, flattened after: XLA fuses this better
            # than the gradient with respect to the flat vector (through the slicing).
            loss, grads = tree_value_and_grad(lay.unravel(flat), batch)
            return loss, lay.ravel(grads)

        def run_program(rf, sf, p, code, n, update_row):
            """One program's instructions; returns its new weights and the register file."""
            def instruction(j, rf):
                o = code[j]
                row = lax.switch(o[0], branches, rf, sf, p, o[1:5])
                return lax.dynamic_update_slice(rf, row.reshape(1, 1, size), (p, o[5], 0))

            rf = lax.fori_loop(0, n, instruction, rf)
            w = _operand(rf, sf, p, ROW_W, True, size)
            return w - _operand(rf, sf, p, update_row, True, size) * sf[SLOT_SCALE], rf

        def chunk(w, rf, code, n, scalars, update_row, k_data, i0):
            steps = i0 + jnp.arange(length, dtype=jnp.int32)

            def step(carry, xs):
                # The weights are carried apart from the register file: while the gradient reads
                # them, the register file can be updated in place (else XLA copies all of it).
                w, rf = carry
                i, sfs = xs
                if mode == "single":
                    loss, g = value_and_grad(w[0], task.batch(k_data[0], i))
                    loss, g = loss[None], g[None]
                else:
                    batch = jax.vmap(task.batch, in_axes=(0, None))(k_data, i)
                    loss, g = jax.vmap(value_and_grad)(w, batch)
                rf = lax.dynamic_update_slice(rf, w[:, None], (0, ROW_W, 0))
                rf = lax.dynamic_update_slice(rf, g[:, None], (0, ROW_G, 0))
                if k == 1:
                    w_new, rf = run_program(rf, sfs[0], 0, code[0], n[0], update_row[0])
                    w = w_new[None]
                else:
                    def one(p, carry):
                        w, rf = carry
                        w_p, rf = run_program(rf, sfs[p], p, code[p], n[p], update_row[p])
                        return lax.dynamic_update_slice(w, w_p[None], (p, 0)), rf

                    w, rf = lax.fori_loop(0, k, one, (w, rf))
                return (w, rf), loss

            (w, rf), losses = lax.scan(step, (w, rf), (steps, jnp.swapaxes(scalars, 0, 1)))
            return w, rf, losses.T

        return chunk

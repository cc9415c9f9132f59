"""The proxy-task record and the reference way to train on one.

A proxy task is a small JAX training problem. Everything in it is a pure function of
arrays, so a whole training run is one `lax.scan` under one `jit`.

A task trains on a scheduled learning rate, as the Lion search did: a linear
warm-up over the first `WARMUP` of the steps, then a cosine decay to `FINAL` of
the peak; or, with `lr_schedule="constant"`, on the peak at every step (the
validation set scores each held-out task both ways: a rule that only wins under
decay is not a better rule). The peak is the task's AdamW `learning_rate` times a
factor (the fitness tries a small grid of factors). `Task.learning_rates` is the
one table of those rates; `Task.schedule` reads the same table as an optax
schedule, so a program trained by the interpreter and by optax sees the very
same rates.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = Any  # a dict of float32 arrays (matrices and vectors)
Batch = Any  # a pytree of arrays, possibly empty

WARMUP = 0.05
"""Share of the steps over which the learning rate rises linearly to its peak."""
FINAL = 0.1
"""The learning rate at the last step, as a share of the peak (cosine decay)."""
SCHEDULES = ("cosine", "constant")
"""The shapes of `learning_rates`: warm-up then cosine decay, or the peak at every step."""


def learning_rates(peak: float, steps: int, schedule: str = "cosine") -> np.ndarray:
    """The learning rate of steps 0 .. steps-1 (float32 [steps], read-only): warm-up then cosine decay
    ("cosine"), or `peak` throughout ("constant").

    Cached: every candidate of a campaign trains on the same few schedules.
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    return _learning_rates(float(peak), steps, schedule)


@functools.lru_cache(maxsize=256)
def _learning_rates(peak: float, steps: int, schedule: str) -> np.ndarray:
    if schedule == "constant":
        rates = np.full(steps, peak, np.float32)
        rates.setflags(write=False)
        return rates
    i = np.arange(steps, dtype=np.float64)
    warmup = max(1, round(WARMUP * steps))
    rise = np.minimum(1.0, (i + 1) / warmup)
    progress = np.clip((i - warmup + 1) / max(steps - warmup, 1), 0.0, 1.0)
    decay = FINAL + (1 - FINAL) * 0.5 * (1 + np.cos(np.pi * progress))
    rates = (peak * rise * decay).astype(np.float32)
    rates.setflags(write=False)
    return rates


@dataclasses.dataclass(frozen=True)
class Task:
    """A training problem: init, loss, batch stream, held-out loss, and AdamW defaults."""

    name: str  # registry key, e.g. "quadratic_illcond"
    tag: str  # "search" or "validation" (held out from search)
    init: Callable[[jax.Array], Params]  # PRNG key -> params
    loss: Callable[[Params, Batch], jax.Array]  # scalar float32 training loss
    batch: Callable[[jax.Array, jax.Array], Batch]  # (key, int32 step) -> batch, traceable
    eval_loss: Callable[[Params], jax.Array]  # held-out loss, or the true objective
    steps: int  # default training steps
    learning_rate: float  # AdamW reference learning rate: the peak of the schedule
    weight_decay: float = 1e-4  # AdamW reference weight decay
    kind: str = ""  # family: "quadratic", "mlp", "cnn", "lm", ...
    description: str = ""  # one line
    lr_schedule: str = "cosine"  # shape of the rates over the steps: one of SCHEDULES

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"task {self.name!r}: unknown lr_schedule {self.lr_schedule!r}; "
                             f"use one of {', '.join(SCHEDULES)}")

    def learning_rates(self, factor: float = 1.0, steps: int | None = None) -> np.ndarray:
        """The learning rate of each step at ``factor`` times the AdamW peak, on the task's `lr_schedule`
        (float32 [steps])."""
        return learning_rates(factor * self.learning_rate, self.steps if steps is None else steps, self.lr_schedule)

    def schedule(self, factor: float = 1.0, steps: int | None = None) -> Callable[[jax.Array], jax.Array]:
        """The same rates as an optax schedule (step count -> learning rate); the last rate after the end."""
        table = jnp.asarray(self.learning_rates(factor, steps))
        return lambda count: table[jnp.minimum(count, table.shape[0] - 1)]


def adamw(task: Task, factor: float = 1.0, steps: int | None = None) -> optax.GradientTransformation:
    """The AdamW reference optimizer of a task: its schedule (at ``factor`` times the peak) and decay."""
    return optax.adamw(task.schedule(factor, steps), weight_decay=task.weight_decay)


def training_run(
    task: Task, optimizer: optax.GradientTransformation, steps: int | None = None
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """A jitted function: PRNG key -> (train loss per step [steps], final eval loss).

    The key is split as `k_init, k_data = jax.random.split(key)`; params start at
    `task.init(k_init)` and step i (from 0) trains on `task.batch(k_data, i)`.
    Compile it once (e.g. `.lower(key).compile()`) and call it with many keys.
    """
    steps = task.steps if steps is None else int(steps)

    def step(carry, i):
        params, opt_state, k_data = carry
        loss, grads = jax.value_and_grad(task.loss)(params, task.batch(k_data, i))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, k_data), loss

    @jax.jit
    def run(key):
        k_init, k_data = jax.random.split(key)
        params = task.init(k_init)
        carry = (params, optimizer.init(params), k_data)
        (params, _, _), losses = jax.lax.scan(step, carry, jnp.arange(steps, dtype=jnp.int32))
        return losses, task.eval_loss(params)

    return run


def train(
    task: Task, optimizer: optax.GradientTransformation, seed: int = 0, steps: int | None = None
) -> tuple[np.ndarray, float]:
    """Train under one jit (lax.scan over steps); return (train loss per step [steps], final eval loss).

    Exact derivation, which the evaluation engine reproduces:
    `k_init, k_data = jax.random.split(jax.random.PRNGKey(seed))`,
    `params = task.init(k_init)`, and step i (i = 0, 1, ...) uses `task.batch(k_data, i)`
    with i an int32 scalar. `steps` defaults to `task.steps`. Compiles on every call;
    use `training_run` to compile once for many seeds.
    """
    losses, eval_loss = training_run(task, optimizer, steps)(jax.random.PRNGKey(seed))
    return np.asarray(losses), float(eval_loss)

"""Measure what one AdamW training run of each proxy task costs on one CPU core.

    taskset -c 0 python -m proxy_tasks.measure [NAME ...]

Compile: lowering and compiling `training_run` once. Run: the fastest of 5 calls of the
compiled run (default steps, seeds 0..4), run time only; the fastest, because other
processes on a shared machine only ever add time. Prints the table of the package
docstring and the `cost=` values of the registry.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

import proxy_tasks  # noqa: E402


def measure(name: str, repeats: int = 5) -> dict:
    """Build the task, compile its AdamW run, and time `repeats` runs."""
    task = proxy_tasks.get(name)
    key = jax.random.PRNGKey(0)
    n_params = sum(x.size for x in jax.tree.leaves(jax.eval_shape(task.init, key)))
    t0 = time.perf_counter()
    run = proxy_tasks.training_run(task, proxy_tasks.adamw(task)).lower(key).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.PRNGKey(seed)))
        times.append(time.perf_counter() - t0)
    return dict(name=name, tag=task.tag, kind=task.kind, params=n_params, steps=task.steps,
                lr=task.learning_rate, compile_s=compile_s, run_s=min(times))


def main(argv: list[str]) -> None:
    rows = [measure(name) for name in argv or proxy_tasks.names()]
    print(f"{'name':20} {'tag':10} {'kind':13} {'params':>7} {'steps':>5} {'lr':>6} {'run s':>6} "
          f"{'compile s':>9}")
    for m in rows:
        print(f"{m['name']:20} {m['tag']:10} {m['kind']:13} {m['params']:7d} {m['steps']:5d} "
              f"{m['lr']:6g} {m['run_s']:6.3f} {m['compile_s']:9.1f}")
    print()
    for m in rows:
        print(f"{m['name']}: cost=({m['run_s']:.2g}, {m['compile_s']:.2g})")


if __name__ == "__main__":
    main(sys.argv[1:])

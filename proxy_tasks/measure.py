"""Measure what one AdamW training run of each proxy task costs on one CPU core.

    taskset -c 0 python -m proxy_tasks.measure [NAME ...]
    python -m proxy_tasks.measure --tune [NAME ...]

Compile: lowering and compiling `training_run` once. Run: the fastest of 5 calls of the
compiled run (default steps, seeds 0..4), run time only; the fastest, because other
processes on a shared machine only ever add time. Prints the table of the package
docstring and the `cost=` values of the registry.

`--tune` prints the sweep behind the registry's learning rates: AdamW on the task's
schedule at `TUNE_FACTORS` times its peak, the geometric mean final eval loss over
seeds 0-2 at each factor, and the best factor (a tuned peak has it near 1, inside the
search's grid 1/3 .. 3).
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


TUNE_FACTORS = (0.25, 0.5, 1, 2, 3, 4, 6, 9, 13)


def tune(name: str, factors=TUNE_FACTORS, seeds=(0, 1, 2)) -> dict[float, float]:
    """Factor of the peak -> geometric mean final eval loss of AdamW over ``seeds`` (inf if any diverged)."""
    import numpy as np

    task = proxy_tasks.get(name)
    out = {}
    for f in factors:
        run = proxy_tasks.training_run(task, proxy_tasks.adamw(task, f))
        evals = [float(run(jax.random.PRNGKey(s))[1]) for s in seeds]
        out[f] = float(np.exp(np.mean(np.log(evals)))) if all(np.isfinite(evals)) else float("inf")
    return out


def _jax_names() -> list[str]:
    return [n for n in proxy_tasks.names() if proxy_tasks.tag(n) != "toy"]


def main(argv: list[str]) -> None:
    if argv[:1] == ["--tune"]:
        for name in argv[1:] or _jax_names():
            losses = tune(name)
            best = min(losses, key=losses.get)
            lr = proxy_tasks.get(name).learning_rate
            print(f"{name:26} peak {lr:g}: best x{best:g} | " + " ".join(f"x{f:g} {v:.4g}" for f, v in losses.items()),
                  flush=True)
        return
    rows = [measure(name) for name in argv or _jax_names()]
    print(f"{'name':26} {'tag':10} {'kind':13} {'params':>7} {'steps':>5} {'lr':>6} {'run s':>6} "
          f"{'compile s':>9}")
    for m in rows:
        print(f"{m['name']:26} {m['tag']:10} {m['kind']:13} {m['params']:7d} {m['steps']:5d} "
              f"{m['lr']:6g} {m['run_s']:6.3f} {m['compile_s']:9.1f}")
    print()
    for m in rows:
        print(f"{m['name']}: cost=({m['run_s']:.2g}, {m['compile_s']:.2g})")


if __name__ == "__main__":
    main(sys.argv[1:])

"""``symopt bench eval``: what one candidate evaluation costs, four ways, side by side.

On one proxy task (default ``mlp_digits``, its default steps, seed 0) and a set
of different programs (default: five baselines), per candidate:

(a) ``interpreter_s``: :func:`symopt.evaluation.evaluate` of one program with
    the interpreter already compiled (warm): training, eval loss and fitness;
(b) ``batched_s``: :func:`evaluate` of all the programs at once with
    ``batched=True``, divided by their number;
(c) ``jit_per_candidate_s``: the naive way, a fresh ``jax.jit`` of
    ``proxy_tasks.task.training_run(task, to_optax(program, lr))`` per program:
    trace, compile and run (its compile part is ``jit_compile_s``);
(d) ``native_s``: the same optax training already compiled: run time only.

Each of (a), (b), (d) is the best of ``repeats`` rounds (rounds interleave the
three, so a busy machine hurts them alike), averaged over the programs. The
persistent compilation cache is off throughout: every compile is a real one. Run it
on a quiet machine, pinned to one core as a worker is:
``taskset -c 0 symopt bench eval``. Targets: (c)/(a) >= 50, (a)/(d) <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import proxy_tasks
from proxy_tasks.task import training_run
from symopt.evaluation import compile_cache
from symopt.evaluation.compiles import count_compiles
from symopt.evaluation.evaluator import evaluate, reference
from symopt.export.optax_export import to_optax
from symopt.programs import baselines

DEFAULT_TASK = "mlp_digits"
DEFAULT_PROGRAMS = ("adam", "adamw", "lion", "momentum", "rmsprop")


def run(task_name: str = DEFAULT_TASK, program_names=DEFAULT_PROGRAMS, repeats: int = 5) -> dict:
    """Measure (a)-(d); returns the figures as a dict (see the module docstring)."""
    with compile_cache.disabled():
        return _run(task_name, program_names, repeats)


def _run(task_name: str, program_names, repeats: int) -> dict:
    import jax

    task = proxy_tasks.get(task_name)
    programs = [baselines.get(n) for n in program_names]
    key = jax.random.PRNGKey(0)

    # One-time costs: the AdamW reference, then the interpreter's executables (unbatched, batched).
    with count_compiles() as setup:
        t0 = time.perf_counter()
        reference(task, 0, task.steps)
        reference_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate(programs[:1], task)
        interpreter_setup_s = time.perf_counter() - t0  # trace, compile and one evaluation
        t0 = time.perf_counter()
        evaluate(programs, task, batched=len(programs))
        batched_setup_s = time.perf_counter() - t0

    # (c) a fresh jit per candidate; its compiled function is then (d)'s native run.
    jit_s, jit_compile_s, native = [], [], []
    for p in programs:
        t0 = time.perf_counter()
        compiled = training_run(task, to_optax(p, task.schedule())).lower(key).compile()
        t1 = time.perf_counter()
        jax.block_until_ready(compiled(key))
        t2 = time.perf_counter()
        jit_s.append(t2 - t0)
        jit_compile_s.append(t1 - t0)
        native.append(compiled)

    best_a = [float("inf")] * len(programs)
    best_d = [float("inf")] * len(programs)
    best_b = float("inf")
    with count_compiles() as warm:
        for _ in range(repeats):
            for i, p in enumerate(programs):
                t0 = time.perf_counter()
                evaluate([p], task)
                best_a[i] = min(best_a[i], time.perf_counter() - t0)
            t0 = time.perf_counter()
            evaluate(programs, task, batched=len(programs))
            best_b = min(best_b, (time.perf_counter() - t0) / len(programs))
            for i, compiled in enumerate(native):
                t0 = time.perf_counter()
                jax.block_until_ready(compiled(key))
                best_d[i] = min(best_d[i], time.perf_counter() - t0)

    a, d = statistics.fmean(best_a), statistics.fmean(best_d)
    c = statistics.fmean(jit_s)
    return {
        "task": task.name, "steps": task.steps, "programs": list(program_names), "repeats": repeats,
        "interpreter_s": a, "batched_s": best_b, "jit_per_candidate_s": c, "native_s": d,
        "jit_over_interpreter": c / a, "interpreter_over_native": a / d,
        "batched_over_interpreter": best_b / a,
        "jit_compile_s": statistics.fmean(jit_compile_s),
        "interpreter_compile_s": interpreter_setup_s, "batched_compile_s": batched_setup_s,
        "reference_s": reference_s,
        "setup_compiles": setup.count, "warm_compiles": warm.count,
        "interpreter_by_program_s": dict(zip(program_names, best_a)),
        "native_by_program_s": dict(zip(program_names, best_d)),
        "load_average": os.getloadavg()[0], "cpus": len(os.sched_getaffinity(0)),
        "backend": jax.default_backend(),
    }


def report(r: dict) -> str:
    """The figures as a small table."""
    lines = [
        f"task {r['task']} ({r['steps']} steps, seed 0), programs {', '.join(r['programs'])}; "
        f"best of {r['repeats']}, {r['cpus']} cpu(s), load {r['load_average']:.2f}",
        f"  (a) interpreter, warm          {r['interpreter_s'] * 1e3:9.2f} ms per candidate",
        f"  (b) batched interpreter        {r['batched_s'] * 1e3:9.2f} ms per candidate "
        f"({len(r['programs'])} at once)",
        f"  (c) fresh jit per candidate    {r['jit_per_candidate_s'] * 1e3:9.2f} ms per candidate "
        f"(compile {r['jit_compile_s'] * 1e3:.0f} ms)",
        f"  (d) native optax, compiled     {r['native_s'] * 1e3:9.2f} ms per candidate",
        f"  (c)/(a) = {r['jit_over_interpreter']:.0f}   (target >= 50)",
        f"  (a)/(d) = {r['interpreter_over_native']:.2f}   (target <= 1.25)",
        f"  (b)/(a) = {r['batched_over_interpreter']:.2f}",
        f"  one-time (trace + compile + first run): interpreter {r['interpreter_compile_s']:.2f} s, batched "
        f"{r['batched_compile_s']:.2f} s, AdamW reference {r['reference_s']:.2f} s; "
        f"compilations while timing: {r['warm_compiles']}",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    r = run(args.task, tuple(args.programs.split(",")) if args.programs else DEFAULT_PROGRAMS, args.repeats)
    print(json.dumps(r) if args.json else report(r))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"proxy task (default: {DEFAULT_TASK})")
    parser.add_argument("--programs", default=None,
                        help=f"comma-separated baselines (default: {','.join(DEFAULT_PROGRAMS)})")
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds (default: 5)")

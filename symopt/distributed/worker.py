"""The evaluator actor: one per core, programs in as text, plain data out.

**Actors.** Each :class:`Evaluator` is a long-lived Ray actor (``num_cpus=1``) that
imports symopt, parses the program *text* it is sent (programs never travel as
pickled objects) and calls :func:`symopt.evaluation.evaluate`; the compiled
interpreters and AdamW references stay cached in its process, so only its first
candidate per task and program-size bucket pays for compilation. It returns plain
data (a dict of floats, strings and lists), which the driver wraps in an
:class:`Evaluation`.

**One thread per actor.** XLA's CPU runtime sizes its intra-op pool from the
cores a process may use, so an actor gets ``NPROC=1`` and ``PJRT_NPROC=1`` in its
``runtime_env`` and, with ``pin=True``, pins its threads to one core before JAX
starts (:mod:`symopt.distributed.cores`); the measurements behind this are in
docs/design.md §10.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from typing import Mapping, Sequence

import symopt
from symopt.distributed.cores import pin_to_core
from symopt.evaluation import Grid
from symopt.evaluation.dispatch import evaluate_tasks
from symopt.programs.parser import parse

THREAD_ENV = {"NPROC": "1", "PJRT_NPROC": "1"}
"""Sizes XLA's CPU intra-op thread pool to one thread (see the module docstring)."""


def _run_summary(run, curves: bool) -> dict:
    return {"task": run.task, "seed": int(run.seed), "factor": float(run.factor), "steps": int(run.steps),
            "steps_run": int(run.steps_run),
            "eval_loss": float(run.eval_loss), "reference_eval_loss": float(run.reference_eval_loss),
            "score": float(run.score), "diverged": bool(run.diverged), "timed_out": bool(run.timed_out),
            "losses": [float(x) for x in run.losses] if curves else None}


def evaluate_text(program: str, tasks: Sequence[str], seeds: Sequence[int], steps: int | None = None,
                  time_limit: float | None = None, curves: bool = False, grid: Mapping | None = None,
                  functions: Sequence[str] | None = None) -> dict:
    """Evaluate one program text in this process; plain data out (what an actor returns).

    Proxy tasks go through :func:`symopt.evaluation.evaluate` (on ``grid``, a
    :class:`~symopt.evaluation.fitness.Grid` as JSON: factors and hurdle; ``functions``: what the
    stage's programs may call, the executables' instruction set); ``toy_*``
    tasks through :func:`symopt.evaluation.toy.evaluate`, as the serial backend does.
    """
    if not isinstance(program, str):
        raise TypeError(f"programs travel as text, got {type(program).__name__}")
    parsed = parse(program)
    tasks, seeds = [str(t) for t in tasks], tuple(int(s) for s in seeds)
    (r,) = evaluate_tasks([parsed], tasks, seeds, steps, grid=Grid(**(grid or {})), functions=functions,
                          time_limit=time_limit)
    return {"program": str(r.program), "fitness": float(r.fitness), "seconds": float(r.seconds),
            "runs": [_run_summary(run, curves) for run in r.runs], "scores": dict(r.scores)}


class Evaluator:
    """The evaluator actor's class (``ray.remote`` is applied by the pool): one per core.

    Everything in and out is plain data; programs arrive as text.
    """

    def __init__(self, slot: int, pin: bool = True):
        # Pin before anything starts JAX's thread pools (sized from the affinity mask).
        self.slot = slot
        self.core, self.core_lock = pin_to_core(slot) if pin else (None, None)
        self.count = 0
        self.started = time.time()

    def info(self) -> dict:
        """Where and how this actor runs: slot, pid, node, core, threads' settings."""
        import ray

        return {"slot": self.slot, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "host": socket.gethostname(), "core": self.core, "affinity": sorted(os.sched_getaffinity(0)),
                "nproc": os.environ.get("NPROC"), "symopt": symopt.__file__, "evaluated": self.count,
                "core_lock": self.core_lock}

    def evaluate(self, program: str, tasks: Sequence[str], seeds: Sequence[int], steps: int | None = None,
                 time_limit: float | None = None, curves: bool = False, grid: Mapping | None = None,
                 functions: Sequence[str] | None = None) -> dict:
        """One candidate; an exception in the evaluation comes back as ``error`` (the actor lives on)."""
        t0 = time.perf_counter()
        try:
            out = evaluate_text(program, tasks, seeds, steps, time_limit, curves, grid, functions)
            out["error"] = None
        except Exception as e:  # noqa: BLE001 - a bad candidate must not take the worker down
            out = {"program": program, "fitness": math.nan, "seconds": math.nan, "runs": [],
                   "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"}
        self.count += 1
        out.update(wall_s=time.perf_counter() - t0, pid=os.getpid(), slot=self.slot)
        return out


_remote_class = None


def actor_class():
    global _remote_class
    if _remote_class is None:
        import ray

        _remote_class = ray.remote(Evaluator)
    return _remote_class


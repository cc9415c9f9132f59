"""Evaluating programs on proxy tasks: :func:`evaluate` and its :class:`Result`.

    >>> from symopt.evaluation import evaluate
    >>> [r] = evaluate([program], ["mlp_digits", "logreg_synthetic"], seeds=(0, 1))
    >>> r.fitness, r.diverged, r.losses["mlp_digits", 0]

Each program trains on every task and seed with the compile-once interpreter
(:mod:`symopt.evaluation.interpreter`), exactly as ``proxy_tasks.train`` would
train it with ``symopt.export.to_optax(program, task.learning_rate)``: same
initial parameters, same batches, same steps. Its fitness is the mean score
against AdamW over tasks and seeds (:mod:`symopt.evaluation.fitness`).

Training runs in compiled chunks of steps; after each chunk a run that
diverged stops (it scores the worst fitness), and a candidate past its
``time_limit`` stops as well. Compiled executables (per task, program-size
bucket, chunk length and batch size) and AdamW references (per task, seed and
steps) are cached for the life of the process; nothing that compiles counts
against a candidate's time limit.
"""

from __future__ import annotations

import dataclasses
import numbers
import threading
import time
from typing import Iterable, Sequence

import jax
import numpy as np

from symopt.evaluation import fitness as fit
from symopt.evaluation.interpreter import Interpreter
from symopt.evaluation.lowering import Bucket, Lowered, idle, lower, pack, scalars
from symopt.programs.parse import parse
from symopt.programs.program import Program

DEFAULT_CHUNK = 50
"""Steps per compiled chunk: the granularity of the divergence check and the time limit."""
DEFAULT_BATCH = 8
"""Programs per batch with ``batched=True``."""


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """One program trained on one task with one seed."""

    task: str
    seed: int
    steps: int  # steps asked for
    losses: np.ndarray  # float32 train loss of every step run (before that step's update)
    eval_loss: float  # final eval loss; NaN when the run diverged or was cut short
    reference_eval_loss: float  # AdamW's final eval loss on the same task, seed and steps
    score: float  # log(reference / eval loss), floored and clipped; WORST_FITNESS if diverged or cut
    diverged: bool
    timed_out: bool

    @property
    def steps_run(self) -> int:
        return int(self.losses.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """A program's evaluation: its fitness and every (task, seed) run.

    ``fitness`` is the mean of the runs' scores: 0 is as good as AdamW, higher is
    better, ``WORST_FITNESS`` (-10) for a program whose every run diverged.
    ``seconds`` is the wall time spent training it (compilation and AdamW
    references excluded; in batched mode, its share of its batch's time).
    """

    program: Program
    fitness: float
    runs: tuple[Run, ...]
    seconds: float

    @property
    def diverged(self) -> bool:
        """Whether any run diverged (non-finite, or exploding loss)."""
        return any(r.diverged for r in self.runs)

    @property
    def timed_out(self) -> bool:
        """Whether the time limit cut any run short."""
        return any(r.timed_out for r in self.runs)

    @property
    def losses(self) -> dict[tuple[str, int], np.ndarray]:
        """Train loss curves by (task, seed)."""
        return {(r.task, r.seed): r.losses for r in self.runs}

    @property
    def eval_losses(self) -> dict[tuple[str, int], float]:
        """Final eval losses by (task, seed)."""
        return {(r.task, r.seed): r.eval_loss for r in self.runs}

    def run(self, task: str, seed: int = 0) -> Run:
        for r in self.runs:
            if r.task == task and r.seed == seed:
                return r
        raise KeyError((task, seed))


# -- caches -------------------------------------------------------------------------------------

_lock = threading.RLock()
_interpreters: dict = {}
_reference_runs: dict = {}
_references: dict = {}


def interpreter(task) -> Interpreter:
    """The (cached) compiled machine of a task."""
    with _lock:
        it = _interpreters.get(task)
        if it is None:
            it = _interpreters[task] = Interpreter(task)
        return it


def reference(task, seed: int, steps: int) -> tuple[np.ndarray, float]:
    """AdamW's (train losses, final eval loss) on a task: ``proxy_tasks.task.adamw`` via ``training_run``."""
    from proxy_tasks.task import adamw, training_run

    key = (task, int(seed), int(steps))
    with _lock:
        if key not in _references:
            run = _reference_runs.get((task, steps))
            if run is None:
                fn = training_run(task, adamw(task), steps)
                run = _reference_runs[task, steps] = fn.lower(jax.random.PRNGKey(0)).compile()
            losses, eval_loss = run(jax.random.PRNGKey(seed))
            _references[key] = (np.asarray(losses), float(eval_loss))
        return _references[key]


def clear_caches() -> None:
    """Forget compiled machines and AdamW references (frees their memory)."""
    with _lock:
        _interpreters.clear()
        _reference_runs.clear()
        _references.clear()


def chunk_plan(steps: int, target: int = DEFAULT_CHUNK) -> tuple[int, ...]:
    """Chunk lengths summing to ``steps``: equal chunks of at most ``target`` where a divisor allows.

    200 -> 4 x 50; 300 -> 6 x 50; 40 -> (40,); 130 -> 5 x 26; 101 -> 50, 50, 1 (one more executable).
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if steps <= target:
        return (steps,)
    for length in range(target, (target + 1) // 2 - 1, -1):
        if steps % length == 0:
            return (length,) * (steps // length)
    return (target,) * (steps // target) + ((steps % target,) if steps % target else ())


# -- the public entry point -----------------------------------------------------------------------


def evaluate(programs, tasks, seeds=(0,), *, steps: int | None = None, batched: bool | int = False,
             time_limit: float | None = None, chunk: int = DEFAULT_CHUNK,
             batch_mode: str | None = None) -> list[Result]:
    """Train every program on every task and seed; one :class:`Result` per program, in order.

    Args:
        programs: Programs (or program texts), or one of them.
        tasks: proxy-task names or ``proxy_tasks.Task`` objects, or one of them.
        seeds: the seeds (each gives the initial parameters and batches of
            ``proxy_tasks.train(task, optimizer, seed)``).
        steps: training steps on every task (default: each task's own ``steps``).
        batched: train programs together, K at a time (``True``: 8; an int: K; never
            more than there are programs), with the model's gradient batched over them;
            same results as unbatched. Programs are grouped by size and each group is
            padded to the largest bucket in it and, the last one, to K with idle slots.
            Each distinct K compiles once per task: a search should pass a fixed K.
        time_limit: seconds of training per candidate; checked between chunks, a
            candidate over it stops and its unfinished runs score the worst fitness.
            In batched mode it applies to each batch's wall time.
        chunk: steps per compiled chunk (the divergence and time checks run between).
        batch_mode: ``"loop"`` (default on CPU) or ``"select"`` (``jax.vmap`` of
            the whole machine; the default on GPU and TPU); see
            :mod:`symopt.evaluation.interpreter`.

    Raises:
        ProgramError: a program does not check.
    """
    programs = _programs(programs)
    tasks = _tasks(tasks)
    seeds = (int(seeds),) if isinstance(seeds, numbers.Integral) else tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("no seeds")
    if steps is not None and int(steps) < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit must be positive, got {time_limit}")
    lowered = [lower(p) for p in programs]
    if not lowered:
        return []
    if batched is False or batched is None:
        return [_evaluate_group([low], low.bucket, 1, "single", tasks, seeds, steps, time_limit, chunk)[0]
                for low in lowered]
    k = DEFAULT_BATCH if batched is True else int(batched)
    if k < 1:
        raise ValueError(f"batched must be True, False or a positive batch size, got {batched}")
    mode = batch_mode or ("loop" if jax.default_backend() == "cpu" else "select")
    k = min(k, len(lowered))
    order = sorted(range(len(lowered)), key=lambda i: lowered[i].bucket)
    results: list[Result | None] = [None] * len(lowered)
    for start in range(0, len(order), k):
        members = order[start:start + k]
        bucket = lowered[members[0]].bucket
        for i in members:
            bucket = bucket.join(lowered[i].bucket)
        group = _evaluate_group([lowered[i] for i in members], bucket, k, mode, tasks, seeds, steps,
                                time_limit, chunk)
        for i, r in zip(members, group):
            results[i] = r
    return results  # type: ignore[return-value]


def _programs(programs) -> list[Program]:
    if isinstance(programs, (Program, str)):
        programs = [programs]
    return [parse(p) if isinstance(p, str) else p for p in programs]


def _tasks(tasks) -> list:
    import proxy_tasks

    if isinstance(tasks, str) or not isinstance(tasks, Iterable):
        tasks = [tasks]
    out = [proxy_tasks.get(t) if isinstance(t, str) else t for t in tasks]
    if not out:
        raise ValueError("no tasks")
    return out


# -- training ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Outcome:
    curve: list = dataclasses.field(default_factory=list)
    eval_loss: float = float("nan")
    diverged: bool = False
    timed_out: bool = False


def _evaluate_group(lowered: Sequence[Lowered], bucket: Bucket, k: int, mode: str, tasks, seeds,
                    steps: int | None, time_limit: float | None, chunk: int) -> list[Result]:
    """Evaluate up to k programs together (k = 1: unbatched) on every task and seed."""
    jobs = []
    for task in tasks:
        n_steps = task.steps if steps is None else int(steps)
        plan = chunk_plan(n_steps, chunk)
        it = interpreter(task)
        # Everything that compiles happens here, before the clock starts.
        for length in set(plan):
            it.chunk(bucket, length, k, mode)
        it.eval_loss(k)
        for seed in seeds:
            it.init(seed)
            jobs.append((task, it, seed, n_steps, plan, reference(task, seed, n_steps)[1]))

    started = time.perf_counter()
    outcomes: list[list[_Outcome]] = []
    for index, (task, it, seed, n_steps, plan, _) in enumerate(jobs):
        over = index > 0 and time_limit is not None and time.perf_counter() - started > time_limit
        if over:  # the limit is checked between chunks: the first chunk always runs
            outcomes.append([_Outcome(timed_out=True) for _ in lowered])
        else:
            outcomes.append(_train(it, lowered, bucket, k, mode, seed, n_steps, plan, started, time_limit))
    seconds = (time.perf_counter() - started) / len(lowered)

    results = []
    for j, low in enumerate(lowered):
        runs = []
        for (task, _, seed, n_steps, _, ref), group in zip(jobs, outcomes):
            o = group[j]
            curve = np.concatenate(o.curve) if o.curve else np.zeros(0, np.float32)
            failed = o.diverged or o.timed_out
            runs.append(Run(task=task.name, seed=seed, steps=n_steps, losses=curve,
                            eval_loss=float("nan") if failed else o.eval_loss, reference_eval_loss=ref,
                            score=fit.WORST_FITNESS if failed else fit.score(o.eval_loss, ref),
                            diverged=o.diverged, timed_out=o.timed_out))
        results.append(Result(program=low.program, fitness=fit.fitness(r.score for r in runs),
                              runs=tuple(runs), seconds=seconds))
    return results


def _train(it: Interpreter, lowered: Sequence[Lowered], bucket: Bucket, k: int, mode: str, seed: int,
           steps: int, plan: tuple[int, ...], started: float, time_limit: float | None) -> list[_Outcome]:
    """Train the programs (in slots 0..n-1 of k) on one task and seed, chunk by chunk."""
    lr = it.task.learning_rate
    n = len(lowered)
    args = pack(list(lowered), bucket, k)
    table = scalars(list(lowered), bucket, lr, steps, k)
    flat, k_data = it.init(seed)
    w = np.repeat(flat[None], k, axis=0)
    rf = it.registers(bucket, k)
    outcomes = [_Outcome() for _ in range(n)]
    active = set(range(n))

    def check(losses, end: int) -> bool:
        """Record a chunk's losses; stop diverged runs (and all, past the time limit). False: all stopped."""
        nonlocal active, args
        losses = np.asarray(losses)
        for j in sorted(active):
            o = outcomes[j]
            o.curve.append(losses[j])
            if fit.diverged(losses[j], float(o.curve[0][0])):
                o.diverged = True
        if end < steps and time_limit is not None and time.perf_counter() - started > time_limit:
            for j in active:
                outcomes[j].timed_out = not outcomes[j].diverged
        stopped = {j for j in active if outcomes[j].diverged or outcomes[j].timed_out}
        if stopped:
            args = {key: value.copy() for key, value in args.items()}  # never mutate what was passed
            for j in stopped:
                idle(args, j)
        active -= stopped
        return bool(active)

    i0 = 0
    for length in plan:
        exe = it.chunk(bucket, length, k, mode)
        w, rf, losses = exe(w, rf, args["code"], args["n"], table[:, i0:i0 + length], args["update_row"],
                            k_data, np.int32(i0))
        i0 += length
        if not check(losses, i0):
            break
    if active:
        evals = np.asarray(it.eval_loss(k)(w))
        for j in active:
            outcomes[j].eval_loss = float(evals[j])
            if not np.isfinite(evals[j]):
                outcomes[j].diverged = True
    return outcomes

"""Evaluating programs on proxy tasks: :func:`evaluate` and its :class:`Result`.

    >>> from symopt.evaluation import evaluate
    >>> from symopt.programs import baselines
    >>> [r] = evaluate([baselines.get("adamw")], ["quadratic_illcond"], seeds=(0,))
    >>> r.fitness, r.diverged, r.losses["quadratic_illcond", 0].shape   # AdamW scores 0 against itself
    (0.0, False, (200,))

Each program trains on every task and seed with the compile-once interpreter
(:mod:`symopt.evaluation.interpreter`), exactly as ``proxy_tasks.train`` would
train it with ``symopt.export.to_optax(program, task.learning_rate)``: same
initial parameters, same batches, same steps. Its fitness is the mean score
against AdamW over tasks and seeds (:mod:`symopt.evaluation.fitness`).

Training runs in chunks of steps, inside one compiled call; after each chunk a
run that diverged stops (it scores the worst fitness). With a ``time_limit``
the chunks are called one at a time and a candidate past it stops as well.
Compiled executables (per task, program-size bucket, chunk plan and batch size)
and AdamW references (per task, seed and steps) are cached for the life of the
process; nothing that compiles counts against a candidate's time limit.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import threading
import time
from typing import Any, Iterable, NamedTuple, Sequence

import jax
import numpy as np

import proxy_tasks
from symopt.evaluation import compile_cache
from symopt.evaluation import fitness as fit
from symopt.evaluation.fitness import Grid
from symopt.evaluation.interpreter import Interpreter
from symopt.evaluation.lowering import Bucket, Lowered, lower
from symopt.evaluation.opcodes import InstructionSet, instruction_set
from symopt.evaluation.packing import pack, scalars
from symopt.programs.baselines import get
from symopt.programs.checker import calls
from symopt.programs.parser import parse
from symopt.programs.program import Program

DEFAULT_CHUNK = 50
"""Steps per chunk: the granularity of the divergence check and the time limit."""
DEFAULT_BATCH = 8
"""Programs per batch with ``batched=True``."""


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """One program trained on one task with one seed at one learning-rate factor."""

    task: str
    seed: int
    steps: int  # steps asked for
    losses: np.ndarray  # float32 train loss of every step run (before that step's update)
    eval_loss: float  # final eval loss; NaN when the run diverged or was cut short
    reference_eval_loss: float  # AdamW's final eval loss on the same task, seed, steps and factor
    score: float  # log(reference / eval loss) at this factor (-inf if diverged or cut); the fitness is per task
    diverged: bool
    timed_out: bool
    factor: float = 1.0  # the peak learning rate is this times the task's AdamW one

    @property
    def steps_run(self) -> int:
        return int(self.losses.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """A program's evaluation: its fitness, its score per task, and every (task, factor, seed) run.

    ``fitness`` is the mean of the task scores (:mod:`symopt.evaluation.fitness`): 0 is as
    good as AdamW, each at its best learning-rate factor; higher is better; every
    task diverged gives ``WORST_FITNESS``. ``seconds`` is the wall time spent training
    it (compilation and AdamW references excluded; in batched mode, its share of its
    batch's time).
    """

    program: Program
    fitness: float
    runs: tuple[Run, ...]
    seconds: float
    scores: dict[str, float] = dataclasses.field(default_factory=dict)  # task -> score

    @property
    def diverged(self) -> bool:
        """Whether any run diverged (non-finite, or exploding loss)."""
        return any(r.diverged for r in self.runs)

    @property
    def timed_out(self) -> bool:
        """Whether the time limit cut any run short."""
        return any(r.timed_out for r in self.runs)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds trained (fewer than asked when the candidate stopped at the hurdle)."""
        return tuple(dict.fromkeys(r.seed for r in self.runs))

    @property
    def losses(self) -> dict[tuple[str, int], np.ndarray]:
        """Train loss curves by (task, seed), at factor 1 (or the first factor trained)."""
        return {(r.task, r.seed): r.losses for r in self._at_one()}

    @property
    def eval_losses(self) -> dict[tuple[str, int], float]:
        """Final eval losses by (task, seed), at factor 1 (or the first factor trained)."""
        return {(r.task, r.seed): r.eval_loss for r in self._at_one()}

    def _at_one(self) -> list[Run]:
        factors = list(dict.fromkeys(r.factor for r in self.runs))
        keep = 1.0 if 1.0 in factors else (factors[0] if factors else None)
        return [r for r in self.runs if r.factor == keep]

    def run(self, task: str, seed: int = 0, factor: float = 1.0) -> Run:
        for r in self.runs:
            if r.task == task and r.seed == seed and r.factor == factor:
                return r
        raise KeyError((task, seed, factor))


# -- caches -------------------------------------------------------------------------------------

_lock = threading.RLock()
_interpreters: dict = {}
_references: dict = {}
_initial: dict = {}


def interpreter(task) -> Interpreter:
    """The (cached) compiled machine of a task. It trains on rates given as data, so tasks with the same model and
    data (a validation task and its constant-rate variant, proxy_tasks' NAME_const) share one: half the compiling."""
    key = (task.init, task.loss, task.batch, task.eval_loss)
    with _lock:
        it = _interpreters.get(key)
        if it is None:
            it = _interpreters[key] = Interpreter(task)
        return it


def reference_program(task) -> Program:
    """AdamW as a program (``symopt.programs.baselines``' ``adamw``, optax's twin) with the task's decay."""
    return get("adamw").with_constant("weight_decay", task.weight_decay)


def reference(task, seed: int, steps: int, factor: float = 1.0, chunk: int = DEFAULT_CHUNK,
              factors=None, ops: InstructionSet | None = None) -> float:
    """AdamW's final eval loss on a task: :func:`reference_program` on the interpreter, with the task's
    schedule at ``factor`` times its peak, trained with the grid ``factors`` (default: that factor alone)."""
    return references(task, (seed,), steps, factors or (factor,), chunk, ops)[float(factor), seed]


def references(task, seeds, steps: int, factors, chunk: int = DEFAULT_CHUNK,
               ops: InstructionSet | None = None) -> dict[tuple[float, int], float]:
    """AdamW's final eval losses by (factor, seed); a seed's factors trained together in one call.

    That call is the one that trains a candidate at the same factors (same chunks, same
    instruction set ``ops``), so the start program of a campaign, AdamW itself, reproduces the
    reference bit for bit; the cache is per grid, since another width of call may round differently.
    """
    seeds, factors = tuple(int(s) for s in seeds), tuple(float(f) for f in factors)
    ops = ops or instruction_set()
    with _lock:
        missing = [s for s in seeds if (task, s, steps, factors, chunk, ops) not in _references]
        if missing:
            it, low, k = interpreter(task), lower(reference_program(task)), len(factors)
            rates = [task.learning_rates(f, steps) for f in factors]
        for s in missing:
            outcomes = _train(it, [low] * k, rates, [s] * k, low.bucket, k, "single" if k == 1 else "loop",
                              chunk_plan(steps, chunk), time.perf_counter(), None, ops)
            _references[task, s, steps, factors, chunk, ops] = [float("nan") if o.diverged else o.eval_loss
                                                                  for o in outcomes]
        return {(f, s): _references[task, s, steps, factors, chunk, ops][i]
                for i, f in enumerate(factors) for s in seeds}


def initial_eval_loss(task, seed: int) -> float:
    """The eval loss at a seed's initial parameters (where AdamW's progress is measured from)."""
    with _lock:
        if (task, seed) not in _initial:
            it = interpreter(task)
            flat, _ = it.init(seed)
            _initial[task, seed] = float(np.asarray(it.eval_loss(1)(flat[None]))[0])
        return _initial[task, seed]


def clear_caches() -> None:
    """Forget compiled machines and AdamW references (frees their memory)."""
    with _lock:
        _interpreters.clear()
        _references.clear()
        _initial.clear()


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
             batch_mode: str | None = None, grid: Grid | None = None,
             functions: Iterable[str] | None = None) -> list[Result]:
    """Train every program on every task, seed and learning-rate factor; one :class:`Result` per program.

    Args:
        programs: Programs (or program texts), or one of them.
        tasks: proxy-task names or ``proxy_tasks.Task`` objects, or one of them.
        seeds: the seeds (each gives the initial parameters and batches of
            ``proxy_tasks.train(task, optimizer, seed)``).
        steps: training steps on every task (default: each task's own ``steps``).
        batched: train programs together, K at a time (``True``: 8; an int: K; never
            more than there are programs), with the model's gradient batched over them;
            the same results as unbatched up to float rounding (the batched gradient is
            other kernels; a chaotic run can end elsewhere). Programs are grouped by size and each group is
            padded to the largest bucket in it and, the last one, to K with idle slots.
            Each distinct K compiles once per task: a search should pass a fixed K.
        time_limit: seconds of training per candidate; checked between chunks, a
            candidate over it stops and its unfinished runs score the worst fitness.
            In batched mode it applies to each batch's wall time.
        chunk: steps per compiled chunk (the divergence and time checks run between).
        batch_mode: ``"loop"`` (default on CPU) or ``"select"`` (``jax.vmap`` of
            the whole machine; the default on GPU and TPU); see
            :mod:`symopt.evaluation.interpreter`.
        grid: the learning-rate factors and the hurdle (:class:`~symopt.evaluation.fitness.Grid`;
            default: factor 1 only, every seed). All factors of one seed train in one
            compiled call (one slot of the batched machine each).
        functions: the library functions these programs may call (a campaign passes its
            space's): the compiled executables then hold only the opcodes those lower to
            (:func:`~symopt.evaluation.opcodes.instruction_set`, about 35 ms of compiling each),
            and a program that calls another is refused. Default: every function, so that
            executables compiled once run any program.

    Raises:
        ProgramError: a program does not check.
        ValueError: a program calls a function outside ``functions``.
    """
    programs = _programs(programs)
    tasks = _tasks(tasks)
    seeds = (int(seeds),) if isinstance(seeds, numbers.Integral) else tuple(int(s) for s in seeds)
    grid = grid or Grid()
    if not seeds:
        raise ValueError("no seeds")
    if steps is not None and int(steps) < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit must be positive, got {time_limit}")
    if set(grid.gates) - {t.name for t in tasks} or not {t.name for t in tasks} - set(grid.gates):
        raise ValueError(f"the gates {list(grid.gates)} must be some of the tasks {[t.name for t in tasks]}, not all")
    lowered = [lower(p) for p in programs]
    if not lowered:
        return []
    _check_calls(programs, functions)
    ops = instructions(functions)
    if batched is False or batched is None:
        groups = [[i] for i in range(len(lowered))]
        k = 1
    else:
        k = DEFAULT_BATCH if batched is True else int(batched)
        if k < 1:
            raise ValueError(f"batched must be True, False or a positive batch size, got {batched}")
        k = min(k, len(lowered))
        order = sorted(range(len(lowered)), key=lambda i: lowered[i].bucket)
        groups = [order[start:start + k] for start in range(0, len(order), k)]
    mode = batch_mode or ("loop" if jax.default_backend() == "cpu" else "select")
    results: list[Result | None] = [None] * len(lowered)
    for members in groups:
        bucket = lowered[members[0]].bucket
        for i in members:
            bucket = bucket.join(lowered[i].bucket)
        group = _evaluate_group([lowered[i] for i in members], bucket, k, mode, tasks, seeds, steps, time_limit,
                                chunk, grid, ops)
        for i, r in zip(members, group):
            results[i] = r
    return results  # type: ignore[return-value]


def instructions(functions: Iterable[str] | None) -> InstructionSet:
    """The instruction set of the executables that ``evaluate(..., functions=functions)`` trains on:
    the opcodes of ``functions`` and of the AdamW reference (None: every opcode)."""
    return instruction_set(_allowed(functions))


def _allowed(functions: Iterable[str] | None) -> frozenset[str] | None:
    """What programs may call under ``functions=``: those, and what the AdamW reference calls (None: anything)."""
    return None if functions is None else frozenset(functions) | calls(get("adamw"))


def _check_calls(programs: Sequence[Program], functions: Iterable[str] | None) -> None:
    allowed = _allowed(functions)
    if allowed is None:
        return
    for p in programs:
        outside = calls(p) - allowed
        if outside:
            raise ValueError(f"program {p.name!r} calls {sorted(outside)}, outside functions={sorted(functions)}: "
                             f"add them, or pass functions=None (every function)")


def _programs(programs) -> list[Program]:
    if isinstance(programs, (Program, str)):
        programs = [programs]
    return [parse(p) if isinstance(p, str) else p for p in programs]


def _tasks(tasks) -> list:
    if isinstance(tasks, str) or not isinstance(tasks, Iterable):
        tasks = [tasks]
    out = [proxy_tasks.get(t) if isinstance(t, str) else t for t in tasks]
    if not out:
        raise ValueError("no tasks")
    toys = [t.name for t in out if t.tag == "toy"]
    if toys:
        raise ValueError(f"{toys[0]!r} is a toy task (NumPy, no JAX): train it with symopt.evaluation.toy.evaluate")
    return out


# -- training ---------------------------------------------------------------------------------------


class _Plan(NamedTuple):
    """How one task is trained in a call of :func:`evaluate`."""

    task: Any
    it: Interpreter
    steps: int
    chunks: tuple[int, ...]  # chunk lengths
    rates: dict[float, np.ndarray]  # factor -> learning rate of each step
    chunk: int  # the chunk length asked for (part of the reference's cache key)
    ops: InstructionSet  # the executables' opcodes (part of it too)


@dataclasses.dataclass
class _Outcome:
    curve: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    eval_loss: float = float("nan")
    diverged: bool = False
    timed_out: bool = False


def _evaluate_group(lowered: Sequence[Lowered], bucket: Bucket, k: int, mode: str, tasks, seeds,
                    steps: int | None, time_limit: float | None, chunk: int, grid: Grid,
                    ops: InstructionSet) -> list[Result]:
    """Evaluate up to k programs together on every task, factor and seed: the first seed, then the
    others for the programs past the grid's hurdle."""
    factors = grid.factors
    width = k * len(factors)  # slots of one call: program-major, then factor
    slot_mode = "single" if width == 1 else mode
    plans = []
    for task in tasks:
        n_steps = task.steps if steps is None else int(steps)
        plans.append(_Plan(task, interpreter(task), n_steps, chunk_plan(n_steps, chunk),
                           {f: task.learning_rates(f, n_steps) for f in factors}, chunk, ops))
    # Everything that compiles, and the AdamW references, happen here, before the clock starts; executables
    # not yet in this process are compiled in turn with other processes (a key per executable, the same in each).
    builds = {f"{p.task.loss.__module__}.{p.task.loss.__qualname__} {p.it.layout.shapes} {bucket} {p.chunks} "
              f"{width} {slot_mode} {ops.opcodes}": functools.partial(p.it.run, bucket, p.chunks, width, slot_mode, ops)
              for p in plans if not p.it.has_run(bucket, p.chunks, width, slot_mode, ops)}
    compile_cache.in_turn(list(builds.items()))
    for p in plans:
        for seed in seeds:
            p.it.init(seed)
            initial_eval_loss(p.task, seed)
        references(p.task, seeds, p.steps, factors, chunk, ops)

    started = time.perf_counter()
    outcomes: dict[tuple[int, str, int, float], _Outcome] = {}  # (program, task, seed, factor)
    active = list(range(len(lowered)))
    for phase, phase_seeds in enumerate((seeds[:1], seeds[1:])):
        if phase == 1 and grid.hurdle is not None:
            active = [j for j in active
                      if grid.fitness(_scores(_runs(j, plans, seeds[:1], factors, outcomes), plans, seeds[:1],
                                              factors)) >= grid.hurdle]
        if not active or not phase_seeds:
            continue
        progs = [lowered[j] for j in active]
        for plan in plans:
            for seed in phase_seeds:
                over = bool(outcomes) and time_limit is not None and time.perf_counter() - started > time_limit
                if over:  # the limit is checked between chunks: the first chunk always runs
                    group = [_Outcome(timed_out=True) for _ in progs for _ in factors]
                else:
                    group = _train(plan.it, [p for p in progs for _ in factors],
                                   [plan.rates[f] for _ in progs for f in factors], [seed] * (len(progs) * len(factors)),
                                   bucket, width, slot_mode, plan.chunks, started, time_limit, ops)
                for n, j in enumerate(active):
                    for m, f in enumerate(factors):
                        outcomes[j, plan.task.name, seed, f] = group[n * len(factors) + m]
    seconds = (time.perf_counter() - started) / len(lowered)

    results = []
    for j, low in enumerate(lowered):
        trained = [s for s in seeds if (j, tasks[0].name, s, factors[0]) in outcomes]
        runs = _runs(j, plans, trained, factors, outcomes)
        scores = _scores(runs, plans, trained, factors)
        results.append(Result(program=low.program, fitness=grid.fitness(scores), runs=tuple(runs),
                              seconds=seconds, scores=scores))
    return results


def _runs(j: int, plans, seeds, factors, outcomes) -> list[Run]:
    """Program ``j``'s runs, from the outcomes of its training."""
    runs = []
    for plan in plans:
        for seed in seeds:
            for f in factors:
                o = outcomes[j, plan.task.name, seed, f]
                eval_loss = float("nan") if o.diverged or o.timed_out else o.eval_loss
                ref = reference(plan.task, seed, plan.steps, f, plan.chunk, factors, plan.ops)
                runs.append(Run(task=plan.task.name, seed=seed, steps=plan.steps, losses=o.curve, eval_loss=eval_loss,
                                reference_eval_loss=ref, score=fit.score(eval_loss, ref), diverged=o.diverged,
                                timed_out=o.timed_out, factor=f))
    return runs


def _scores(runs: Sequence[Run], plans, seeds, factors) -> dict[str, float]:
    """Each task's score (:func:`symopt.evaluation.fitness.task_score`) from a program's runs."""
    out = {}
    for plan in plans:
        losses = {(r.factor, r.seed): r.eval_loss for r in runs if r.task == plan.task.name}
        ref = references(plan.task, seeds, plan.steps, factors, plan.chunk, plan.ops)
        out[plan.task.name] = fit.task_score(losses, ref, {s: initial_eval_loss(plan.task, s) for s in seeds})
    return out


def _train(it: Interpreter, lowered: Sequence[Lowered], rates: Sequence[np.ndarray], seeds: Sequence[int],
           bucket: Bucket, k: int, mode: str, plan: tuple[int, ...], started: float,
           time_limit: float | None, ops: InstructionSet) -> list[_Outcome]:
    """Train slot j = ``lowered[j]`` on the schedule ``rates[j]`` and seed ``seeds[j]`` (slots past them idle
    up to k): one call of the run executable, or one per chunk under a time limit."""
    steps, n, pad = sum(plan), len(lowered), k - len(lowered)
    args = pack(list(lowered), bucket, k, ops)
    table = scalars(list(lowered), bucket, np.stack(rates), steps, k)
    inits = [it.init(seed) for seed in seeds]
    w = np.stack([flat for flat, _ in inits] + [inits[0][0]] * pad)
    k_data = np.stack([key for _, key in inits] + [inits[0][1]] * pad)
    exe = it.run(bucket, plan, k, mode, ops)
    program = (args["code"], args["n"], table, args["update_row"], k_data)
    if time_limit is not None:  # called once per chunk: sent to the device once
        program = jax.device_put(program)
    state = it.start(bucket, steps, w, n)
    calls = [(0, len(plan))] if time_limit is None else [(c, c + 1) for c in range(len(plan))]
    timed_out = False
    for c0, c1 in calls:
        state, evals = exe(state, *program, np.int32(c0), np.int32(c1))
        if c1 == len(plan) or not np.asarray(state.active)[:n].any():
            break
        if time.perf_counter() - started > time_limit:
            timed_out = True
            break
    losses, steps_run = np.asarray(state.losses), np.asarray(state.steps_run)
    active, evals = np.asarray(state.active), np.asarray(evals)
    outcomes = []
    for j in range(n):
        o = _Outcome(curve=losses[j, :steps_run[j]], diverged=not active[j], timed_out=timed_out and active[j])
        if active[j] and not timed_out:
            o.eval_loss = float(evals[j])
            o.diverged = not np.isfinite(evals[j])
        outcomes.append(o)
    return outcomes

"""The evaluator pool: actors (:mod:`symopt.distributed.worker`) fed candidates as they finish.

    from symopt.distributed import EvaluatorPool, connect

    connect()                                   # local Ray, or join RAY_ADDRESS / address= (cluster.py)
    with EvaluatorPool("mlp_digits", seeds=(0,)) as pool:     # one actor per free CPU
        for i, text in enumerate(program_texts):
            pool.submit(i, text)
        for ev in pool.results():               # in completion order, each id exactly once
            print(ev.id, ev.fitness)

**Steady-state dispatch.** :meth:`EvaluatorPool.submit` queues a candidate and
hands it to the least loaded ready actor when one has fewer than ``max_in_flight``
tasks (default 2: the next candidate waits in the actor's own queue, so it never
idles for a round trip). :meth:`EvaluatorPool.next_result` waits with
``ray.wait(refs, num_returns=1)`` for whichever task finishes first and refills
that actor at once; no worker waits for a generation to end.
:attr:`EvaluatorPool.capacity` says how many more candidates would start now;
:meth:`EvaluatorPool.backend` gives a campaign stage (:class:`PoolStage`) with
both the asynchronous interface that :mod:`symopt.evolve.steady` drives (propose
a child whenever there is capacity, accept each result as it arrives) and a
batch ``evaluate_fn`` (:meth:`EvaluatorPool.evaluate`) for the funnel stages. Results are the
serial :func:`symopt.evaluation.evaluate`'s, bit for bit (same executables; checked
on the 14 program baselines on three tasks, loss curves included).

**Failures.** Actors run with ``max_restarts=0``; the pool replaces them itself.
When a task fails with a system error (the actor process was killed,
``RayActorError``/``ActorDiedError``; its node died or was removed; a worker
crash; an object lost), the pool kills the actor's handle, puts *all* candidates
that were in flight on it back at the front of the queue (a sibling task that had
already finished is delivered, not redone), and starts a replacement in the same
slot, which Ray places wherever a CPU is free (a removed node is never used
again; with no free CPU the replacement waits and the pool runs on the others).
Each candidate id is delivered exactly once: ids are unique per pool, a result is
delivered only while its id is pending, and a candidate that has killed
``max_attempts`` workers is delivered as an error instead of being retried forever.
An exception inside the evaluation itself (a bad program text, say) is not a
failure of the worker: it comes back as an :class:`Evaluation` with ``error`` set
and ``fitness`` NaN (which symopt.search counts as the worst).
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Hashable, Iterator, Mapping, Sequence

from symopt.distributed.jobs import (POOL_DEFAULT, Job, PoolStats, Slot, is_worker_loss, ray_api, seed_tuple,
                                     task_names)
from symopt.distributed.results import LOST_WORKERS, Evaluation, evaluation
from symopt.distributed.stage import PoolStage, program_text
from symopt.distributed.worker import THREAD_ENV, actor_class
from symopt.programs import baselines

if TYPE_CHECKING:
    from symopt.evaluation.fitness import Grid

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 2
DEFAULT_MAX_ATTEMPTS = 3


class EvaluatorPool:
    """Evaluator actors fed one candidate at a time, results in completion order, each id once.

    Args:
        tasks: proxy-task names (or ``toy_*``) for candidates that do not name their own.
        seeds: seeds likewise.
        steps: training steps likewise (default: each task's own).
        workers: number of actors (default: the cluster's free CPUs, at least 1).
        max_in_flight: candidates handed to one actor at a time (1 or 2 is right).
        pin: pin each actor's threads to one core (see :mod:`symopt.distributed.worker`).
        time_limit: seconds of training per candidate (``symopt.evaluation.evaluate``'s).
        curves: return every run's loss curve in :class:`RunSummary` (bigger messages).
        max_attempts: workers a candidate may kill before it is delivered as an error.
        max_start_failures: a slot whose actor fails to start this many times in a row,
            or more than ``max_start_failures * workers`` actors lost with no candidate
            finished in between, raises RuntimeError from :meth:`next_result` (the
            workers cannot run here: a broken environment, not a bad candidate).
        actor_options: extra ``.options()`` for the actors (e.g. ``resources``);
            ``runtime_env`` given here is merged with the thread settings.

    Not thread-safe: drive it from one thread. Ray must be connected (:func:`connect`);
    the constructor starts the actors without waiting (see :meth:`wait_ready`).
    """

    def __init__(self, tasks: str | Sequence[str] = (), seeds: int | Sequence[int] = (0,), steps: int | None = None,
                 *, workers: int | None = None, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, pin: bool = True,
                 time_limit: float | None = None, curves: bool = False, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 max_start_failures: int = 3, actor_options: Mapping | None = None):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("Ray is not connected: call symopt.distributed.connect() first")
        self.tasks = task_names(tasks)
        self.seeds = seed_tuple(seeds)
        self.steps = None if steps is None else int(steps)
        self.time_limit = time_limit
        self.curves = curves
        self.pin = pin
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = int(max_in_flight)
        self.max_attempts = int(max_attempts)
        self.max_start_failures = int(max_start_failures)
        if workers is None:
            workers = max(1, int(ray.available_resources().get("CPU", 1)))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        options = dict(actor_options or {})
        env = dict(options.pop("runtime_env", None) or {})
        env["env_vars"] = {**THREAD_ENV, **env.get("env_vars", {})}
        self._options = {"num_cpus": 1, "max_restarts": 0, "max_task_retries": 0, "runtime_env": env, **options}
        self.stats = PoolStats()
        self._slots = [Slot(i) for i in range(int(workers))]
        self._active = len(self._slots)
        self._refs: dict[Any, tuple[str, int]] = {}  # ref -> ("ready" | "eval", slot)
        self._queue: collections.deque[Job] = collections.deque()
        self._pending: dict[Hashable, Job] = {}
        self._delivered: set = set()
        self._ready: collections.deque[Evaluation] = collections.deque()  # delivered, not yet handed out
        self._closed = False
        self._last_warning = 0.0
        self._said: set[str] = set()  # warnings already given
        self._losses_in_a_row = 0  # workers lost with no evaluation delivered in between
        for slot in self._slots:
            self._start(slot)

    # -- public --------------------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Number of actor slots."""
        return len(self._slots)

    @property
    def active(self) -> int:
        """How many slots (the first ones) receive new candidates; all by default.

        Lower it to leave cores free, or to compare throughputs on the same warm actors
        (``symopt bench scale``); what is already in flight finishes where it is.
        """
        return self._active

    @active.setter
    def active(self, n: int) -> None:
        if not 1 <= int(n) <= len(self._slots):
            raise ValueError(f"active must be between 1 and {len(self._slots)}, got {n}")
        self._active = int(n)

    @property
    def pending(self) -> int:
        """Candidates submitted and not yet handed out (queued, in flight, or finished and buffered)."""
        return len(self._pending) + len(self._ready)

    @property
    def capacity(self) -> int:
        """How many more candidates would start (or wait in an actor's queue) right now, not in the pool's queue."""
        free = sum(self.max_in_flight - len(s.inflight) for s in self._slots[:self._active] if s.ready)
        return max(0, free - len(self._queue))

    def submit(self, candidate_id: Hashable, program: Any, *, tasks: str | Sequence[str] = POOL_DEFAULT,
               seeds: int | Sequence[int] = POOL_DEFAULT, steps: int | None = POOL_DEFAULT,
               time_limit: float | None = POOL_DEFAULT, grid: Grid | None = None,
               functions: Sequence[str] | None = None) -> None:
        """Queue one candidate: its id (unique in this pool) and its program as text (a Program is printed).

        ``tasks``, ``seeds``, ``steps`` and ``time_limit`` override the pool's for it
        (``steps=None``: each task's own steps; ``time_limit=None``: no limit); ``grid``
        is its learning-rate grid (default: factor 1 only); ``functions`` what its stage's
        programs may call (``symopt.evaluate``'s; default: any function).
        """
        self._check_open()
        if candidate_id in self._pending or candidate_id in self._delivered:
            raise ValueError(f"candidate id {candidate_id!r} was already submitted to this pool")
        job = self._job(candidate_id, program_text(program), tasks, seeds, steps, time_limit, grid, functions)
        self._pending[candidate_id] = job
        self._queue.append(job)
        self.stats.submitted += 1
        self._dispatch()

    def next_result(self, timeout: float | None = None) -> Evaluation | None:
        """The next finished candidate, waiting at most ``timeout`` seconds (None: until one finishes).

        Returns None when nothing is pending or the timeout passed (see :attr:`pending`).
        Raises RuntimeError when no worker can be started (see ``max_start_failures``).
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._dispatch()
            if self._ready:
                return self._ready.popleft()
            if not self._pending:
                return None
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._refs:  # every slot dead and not restartable right now
                self._restart_dead()
                if not self._refs:
                    raise RuntimeError("no evaluator actors left to run the pending candidates")
            wait = remaining if remaining is not None else 60.0
            ready, _ = ray_api().wait(list(self._refs), num_returns=1, timeout=wait)
            if ready:
                self._handle(ready[0])
            elif deadline is not None and time.monotonic() >= deadline:
                return None
            else:
                self._warn_if_starved()

    def results(self, timeout: float | None = None) -> Iterator[Evaluation]:
        """Every pending candidate's result as it finishes; TimeoutError if ``timeout`` s pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{self.pending} candidates still pending after {timeout} s")
            r = self.next_result(remaining)
            if r is not None:
                yield r

    def evaluate(self, programs: Sequence[Any], tasks: str | Sequence[str] = POOL_DEFAULT,
                 seeds: int | Sequence[int] = POOL_DEFAULT, steps: int | None = POOL_DEFAULT, *,
                 raise_errors: bool = True, grid: Grid | None = None,
                 functions: Sequence[str] | None = None) -> list[Evaluation]:
        """A batch, in order (all of it in flight at once). Other candidates' results stay pending.

        With ``raise_errors``, a failed evaluation raises RuntimeError (as the serial
        backend would); otherwise it comes back with ``error`` set.
        """
        self._check_open()
        ids = []
        for p in programs:
            self._batch += 1
            cid = ("symopt.distributed.batch", self._batch)
            self.submit(cid, p, tasks=tasks, seeds=seeds, steps=steps, grid=grid, functions=functions)
            ids.append(cid)
        wanted, got, others = set(ids), {}, []
        while len(got) < len(ids):
            r = self.next_result()
            if r is None:  # pragma: no cover - every id is pending until delivered
                raise RuntimeError("pool lost track of a batch")
            (got.__setitem__(r.id, r) if r.id in wanted else others.append(r))
        self._ready.extendleft(reversed(others))
        out = [got[i] for i in ids]
        if raise_errors:
            bad = [r for r in out if r.error]
            if bad:
                raise RuntimeError(f"{len(bad)} of {len(out)} evaluations failed; first:\n{bad[0].error}")
        return out

    _batch = 0

    def backend(self, tasks: Sequence[str], seeds: Sequence[int], steps: int | None,
                grid: Grid | None = None, functions: Sequence[str] | None = None) -> "PoolStage":
        """A ``symopt.search`` backend: ``search(config, backend=pool.backend)`` trains every stage on the pool."""
        self._stages += 1
        return PoolStage(self, self._stages, task_names(tasks), seed_tuple(seeds),
                         None if steps is None else int(steps), grid, functions)

    _stages = 0

    def wait_ready(self, timeout: float | None = None) -> list[dict]:
        """Wait until every slot's actor has started (or ``timeout``); returns the started actors' info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(not s.ready for s in self._slots):
            starting = [s.ready_ref for s in self._slots if s.ready_ref is not None]
            if not starting:
                self._restart_dead()
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{sum(not s.ready for s in self._slots)} evaluators not started after {timeout} s")
            ready, _ = ray_api().wait(starting, num_returns=1, timeout=remaining)
            if ready:
                self._handle(ready[0])
        return self.worker_info()

    def warm(self, programs: Sequence[Any] | None = None, tasks: str | Sequence[str] = POOL_DEFAULT,
             seeds: int | Sequence[int] = POOL_DEFAULT, steps: int | None = POOL_DEFAULT,
             timeout: float | None = None, grid: Grid | None = None,
             functions: Sequence[str] | None = None) -> float:
        """Fill every actor's compile caches: each evaluates every program once (results discarded).

        Default program: the AdamW baseline. Warm with one program per program-size
        bucket that the campaign will meet (or simply with its candidates), on the stage's
        ``grid`` and ``functions`` (as :meth:`submit` takes them). Returns seconds.
        """
        t0 = time.monotonic()
        self.wait_ready(timeout)
        if programs is None:
            programs = [baselines.get("adamw")]
        texts = [program_text(p) for p in programs]
        job = self._job(None, "", tasks, seeds, steps, None, grid, functions)
        refs = [s.actor.evaluate.remote(t, *job.args(curves=False)[1:]) for s in self._slots if s.ready for t in texts]
        for ref in refs:
            try:
                ray_api().get(ref)
            except Exception as e:  # a dead actor shows up on its next real task too
                if not is_worker_loss(e):
                    raise
        return time.monotonic() - t0

    def worker_info(self) -> list[dict]:
        """Each started actor's info (slot, pid, node, core, ...)."""
        return [dict(s.info) for s in self._slots if s.ready]

    def worker_of(self, candidate_id: Hashable) -> dict | None:
        """The info of the actor a candidate is on now (None while queued or when done)."""
        for s in self._slots:
            if s.ready and any(job.id == candidate_id for job in s.inflight.values()):
                return dict(s.info)
        return None

    def shutdown(self) -> None:
        """Kill the actors (undelivered candidates are dropped)."""
        if self._closed:
            return
        self._closed = True
        ray = ray_api()
        for s in self._slots:
            if s.actor is not None:
                try:
                    ray.kill(s.actor, no_restart=True)
                except Exception:  # already dead
                    pass
            s.actor, s.ready_ref, s.info = None, None, None
            s.inflight.clear()
        self._refs.clear()
        self._queue.clear()

    close = shutdown

    def __enter__(self) -> "EvaluatorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        ready = sum(s.ready for s in self._slots)
        return (f"EvaluatorPool({ready}/{len(self._slots)} workers ready, {len(self._queue)} queued, "
                f"{sum(len(s.inflight) for s in self._slots)} in flight, {self.stats})")

    # -- internals -------------------------------------------------------------------------------------

    def _job(self, cid, text, tasks, seeds, steps, time_limit, grid: Grid | None, functions) -> Job:
        """A job with the pool's settings where the caller left POOL_DEFAULT (grid and functions as they travel)."""
        job = Job(cid, text, self.tasks if tasks is POOL_DEFAULT else task_names(tasks),
                   self.seeds if seeds is POOL_DEFAULT else seed_tuple(seeds),
                   self.steps if steps is POOL_DEFAULT else (None if steps is None else int(steps)),
                   self.time_limit if time_limit is POOL_DEFAULT else time_limit,
                   grid.as_json() if grid is not None else None,
                   None if functions is None else tuple(sorted(functions)))
        if not job.tasks:
            raise ValueError("no tasks: give them to the pool or to submit()")
        return job

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the pool is shut down")

    def _start(self, slot: Slot) -> None:
        actor = actor_class().options(**self._options).remote(slot.index, self.pin)
        slot.actor, slot.info, slot.generation = actor, None, slot.generation + 1
        slot.ready_ref = actor.info.remote()
        slot.started_at = time.monotonic()
        self._refs[slot.ready_ref] = ("ready", slot.index)
        self.stats.workers_started += 1

    def _warn_if_starved(self) -> None:
        """Log (once a minute) while no actor has been up for a minute: the cluster has no free CPU for them."""
        now = time.monotonic()
        if any(s.ready for s in self._slots) or now - self._last_warning < 60:
            return
        waited = now - max(s.started_at for s in self._slots)
        if waited >= 60:
            self._last_warning = now
            logger.warning("no evaluator actor running for %.0f s: %d candidates wait for a free CPU in the cluster",
                           waited, len(self._pending))

    def _restart_dead(self) -> None:
        for s in self._slots:
            if s.actor is None:
                self._start(s)

    def _dispatch(self) -> None:
        if not self._queue:
            return
        ready = [s for s in self._slots[:self._active] if s.ready]
        while self._queue and ready:
            slot = min(ready, key=lambda s: (len(s.inflight), s.index))
            if len(slot.inflight) >= self.max_in_flight:
                return
            job = self._queue.popleft()
            job.attempts += 1
            ref = slot.actor.evaluate.remote(*job.args(self.curves))
            slot.inflight[ref] = job
            self._refs[ref] = ("eval", slot.index)

    def _handle(self, ref) -> None:
        kind, index = self._refs.pop(ref)
        slot = self._slots[index]
        ray = ray_api()
        if kind == "ready":
            slot.ready_ref = None
            try:
                slot.info = ray.get(ref)
                slot.start_failures = 0
                problem = slot.info.get("core_lock")
                if problem and problem not in self._said:  # once per pool, not once per actor
                    self._said.add(problem)
                    logger.warning("evaluators pinned without a core lock: %s", problem)
            except Exception as e:
                if not is_worker_loss(e) and not isinstance(e, ray_api().exceptions.RayError):
                    raise
                slot.start_failures += 1
                logger.warning("evaluator %d failed to start (%d): %s", index, slot.start_failures, e)
                if slot.start_failures >= self.max_start_failures:
                    raise RuntimeError(f"evaluator {index} failed to start {slot.start_failures} times") from e
                self._lose(slot, e)
            return
        job = slot.inflight.pop(ref)
        try:
            out = ray.get(ref)
        except Exception as e:
            if not is_worker_loss(e):
                # The actor method itself raised (it catches evaluation errors): a bug; report it as the result.
                self._deliver(job, {"program": job.program, "fitness": math.nan, "runs": [],
                                    "error": f"{type(e).__name__}: {e}"})
                return
            slot.inflight[ref] = job  # lost with the others
            self._lose(slot, e)
            return
        self._deliver(job, out)

    def _lose(self, slot: Slot, exc: BaseException) -> None:
        """The slot's actor is gone: rescue finished siblings, requeue the rest, start a replacement."""
        ray = ray_api()
        self.stats.worker_deaths += 1
        self._losses_in_a_row += 1
        pid = slot.info.get("pid") if slot.info else None
        logger.warning("evaluator %d (pid %s) lost: %s; %d candidates to re-send", slot.index, pid,
                       type(exc).__name__, len(slot.inflight))
        lost = list(slot.inflight.items())
        slot.inflight.clear()
        for ref, _ in lost:
            self._refs.pop(ref, None)
        if slot.ready_ref is not None:
            self._refs.pop(slot.ready_ref, None)
        requeue = []
        for ref, job in lost:
            done, _ = ray.wait([ref], timeout=0)
            if done:
                try:
                    out = ray.get(ref, timeout=0)
                except Exception:
                    requeue.append(job)
                else:
                    self.stats.recovered += 1
                    self._deliver(job, out)
                    continue
            else:
                requeue.append(job)
        for job in reversed(requeue):
            if job.attempts >= self.max_attempts:
                self._deliver(job, {"program": job.program, "fitness": math.nan, "runs": [],
                                    "error": f"{LOST_WORKERS} {job.attempts} died while evaluating it (last: {exc!r})"})
            else:
                self.stats.resubmitted += 1
                self._queue.appendleft(job)
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:
            pass
        slot.actor, slot.info, slot.ready_ref = None, None, None
        self._start(slot)
        if self._losses_in_a_row > self.max_start_failures * len(self._slots):
            raise RuntimeError(f"{self._losses_in_a_row} evaluator actors lost in a row without one finished "
                               f"candidate; the last: {exc!r}") from exc

    def _deliver(self, job: Job, out: Mapping) -> None:
        if job.id in self._delivered or job.id not in self._pending:
            self.stats.duplicates_dropped += 1
            return
        del self._pending[job.id]
        self._delivered.add(job.id)
        ev = evaluation(job, out)
        self.stats.delivered += 1
        self.stats.errors += ev.error is not None
        if "pid" in out:  # a worker finished it
            self._losses_in_a_row = 0
        self._ready.append(ev)

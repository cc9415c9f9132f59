"""The Ray evaluator pool: real Ray, real actors, real failures (no mocks).

One local Ray instance serves the file (the session fixture ``ray_session``) and one
two-worker pool serves the single-node tests. The multi-node test needs a
``ray.cluster_utils.Cluster`` of its own; a driver can be connected to one cluster
at a time, so it runs in a subprocess (this file run as a script), which also proves
that joining an address ships the code and keeps token authentication on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

TASK = "quadratic_illcond"  # cheap: about 1 ms per candidate at 50 steps once compiled
STEPS = 50
SLOW_STEPS = 200_000  # 4000 chunks of 50 in one call, about a second or two of training
VICTIM_STEPS = 600_000  # long enough to be still training when it is killed
NAMES = ("adam", "lion", "momentum", "sgd", "rmsprop")
CUSTOM = """def train(w, g, m, lr):
    m = interpolate(m, g, 0.2)
    update = lr * (sign(m) + 0.01 * w)
    return update, m
"""


def _texts(names=NAMES):
    from symopt.programs import baselines

    return [str(baselines.get(n)) for n in names]


@pytest.fixture(scope="module")
def shared_pool(ray_session):
    from symopt.distributed import EvaluatorPool

    p = EvaluatorPool(TASK, steps=STEPS, workers=2, max_in_flight=2)
    p.wait_ready(timeout=120)
    yield p
    p.shutdown()


@pytest.fixture
def pool(shared_pool):
    """The module's pool, empty at the start of each test: what a failed or timed-out test left in flight is
    drained after it, so that no late result reaches the next test."""
    assert shared_pool.pending == 0, "a test before this one left candidates in the pool"
    yield shared_pool
    for _ in shared_pool.results(timeout=300):
        pass


CLIENT = """
import sys, ray
try:
    ray.init(address=sys.argv[1], logging_level="ERROR")
except ConnectionError as e:
    cause = e.__cause__
    print("refused", "InvalidAuthToken" in str(cause) or "Authentication" in str(cause))
else:
    print("accepted", ray.cluster_resources().get("CPU"))
"""


def _client(address: str, **env) -> str:
    """A separate process connecting to ``address`` with the given auth settings only: what it got."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    clean["RAY_gcs_server_port_wait_time_s"] = "1"  # one connection attempt (Ray retries for 20 s by default)
    # the instance listens on 127.0.0.1 alone: a client joins it as a node of this machine's loopback (else
    # Ray looks for its node at the machine's outward address, and waits for ever)
    clean["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    proc = subprocess.run([sys.executable, "-c", CLIENT, address], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_client_without_the_token_is_refused(ray_session):
    """The session's instance (started by connect) turns away clients that lack its token, and only those."""
    assert ray_session["auth_mode"] == "token"
    address = ray_session["address"]
    assert _client(address, RAY_AUTH_MODE="disabled") == "refused True"  # no token sent
    assert _client(address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64) == "refused True"  # a wrong one
    assert _client(address, RAY_AUTH_MODE="token") == f"accepted {ray_session['cpus']}"  # the token connect made


@pytest.mark.slow
def test_actors_are_pinned_to_one_core_and_one_thread(pool):
    infos = pool.worker_info()
    assert len(infos) == 2 and len({i["pid"] for i in infos}) == 2
    for info in infos:
        assert info["affinity"] == [info["core"]] and info["core"] in os.sched_getaffinity(0)
        assert info["nproc"] == "1"
    # Distinct cores unless another symopt pool on this machine (a concurrent test run) holds them.


@pytest.mark.slow
def test_results_equal_serial_evaluate(pool):
    from symopt.evaluation import evaluate

    texts = _texts() + [CUSTOM]
    remote = pool.evaluate(texts)
    local = evaluate(texts, TASK, steps=STEPS)
    assert [r.program for r in remote] == [str(r.program) for r in local]
    for r, s in zip(remote, local):
        assert r.ok and r.attempts == 1
        # The same executables on the same CPU: bitwise equal, although the driver's XLA runs
        # two threads and the actors one (checked on 14 baselines x 3 tasks, curves included).
        assert r.fitness == s.fitness
        [run] = r.runs
        np.testing.assert_equal((run.eval_loss, run.score), (s.runs[0].eval_loss, s.runs[0].score))  # NaN: diverged
        assert (run.task, run.seed, run.steps, run.steps_run) == (TASK, 0, STEPS, s.runs[0].steps_run)
        assert run.diverged == s.runs[0].diverged
    assert len({r.worker for r in remote}) == 2  # both actors took part


def test_toy_tasks_and_the_search_backend(pool):
    from symopt.programs import parse
    from symopt.evaluation import toy

    texts = _texts()[:3]
    evaluate_fn = pool.backend(["toy_quadratic"], [0, 1], None)  # what symopt.search(config, backend=...) calls
    remote = evaluate_fn(texts)
    local = toy.evaluate([parse(t) for t in texts], ["toy_quadratic"], (0, 1))
    assert [r.fitness for r in remote] == [r.fitness for r in local]
    assert [len(r.runs) for r in remote] == [2, 2, 2]


def test_a_bad_program_is_an_error_result_not_a_dead_worker(pool):
    deaths = pool.stats.worker_deaths
    pool.submit("bad", "def train(g):\n    return frobnicate(g)\n")
    r = pool.next_result(timeout=60)
    assert r.id == "bad" and not r.ok and "frobnicate" in r.error and np.isnan(r.fitness)
    assert pool.stats.worker_deaths == deaths
    with pytest.raises(ValueError, match="already submitted"):
        pool.submit("bad", CUSTOM)
    with pytest.raises(TypeError):
        pool.submit("obj", object())


@pytest.mark.slow
def test_steady_state_results_arrive_as_each_finishes(pool):
    texts = _texts()
    pool.submit("slow", texts[0], steps=SLOW_STEPS)
    fast = [f"fast{i}" for i in range(6)]
    for i, cid in enumerate(fast):
        pool.submit(cid, texts[i % len(texts)])
    results = list(pool.results(timeout=120))
    order = [r.id for r in results]
    assert sorted(order) == sorted(fast + ["slow"])  # each exactly once
    # Where each candidate ran decides the order, not how Ray placed them: an actor runs its calls one after
    # another, so a fast one queued behind the slow one (max_in_flight=2) comes after it, and those that ran
    # on the other actor (4,000 times less training each) come before it, as each finishes.
    slot = {r.id: r.worker for r in results}
    elsewhere = [i for i in fast if slot[i] != slot["slow"]]
    assert elsewhere, slot  # the other actor trained while the slow one did
    assert all(order.index(i) < order.index("slow") for i in elsewhere), (order, slot)
    assert all(order.index(i) > order.index("slow") for i in fast if slot[i] == slot["slow"]), (order, slot)
    assert pool.pending == 0 and pool.next_result(timeout=0) is None


@pytest.mark.slow
def test_sigkilled_worker_is_replaced_and_its_candidates_delivered_once(pool):
    texts = _texts()
    before = {i["slot"]: i["pid"] for i in pool.worker_info()}
    deaths = pool.stats.worker_deaths
    pool.submit("victim", texts[1], steps=VICTIM_STEPS)
    others = [f"k{i}" for i in range(5)]
    for i, cid in enumerate(others):
        pool.submit(cid, texts[i % len(texts)])
    info = pool.worker_of("victim")
    assert info is not None
    time.sleep(0.3)  # let it start (killed before it starts, it is lost all the same: it was sent there)
    os.kill(info["pid"], signal.SIGKILL)
    results = list(pool.results(timeout=120))
    ids = [r.id for r in results]
    assert sorted(ids) == sorted(others + ["victim"])  # none lost, none twice
    victim = next(r for r in results if r.id == "victim")
    assert victim.ok and victim.attempts == 2 and victim.pid != info["pid"]
    assert pool.stats.worker_deaths == deaths + 1
    assert pool.stats.duplicates_dropped == 0
    # The slot got a new actor (a new process), and the pool works on.
    after = {i["slot"]: i["pid"] for i in pool.wait_ready(timeout=120)}
    assert after[info["slot"]] != before[info["slot"]]
    again = pool.evaluate(texts)
    assert all(r.ok for r in again)


@pytest.mark.slow
def test_a_campaign_runs_steady_state_on_the_pool(pool, tmp_path):
    """search() on pool.backend: children proposed while an actor is free, each result accepted as it comes."""
    from symopt.campaign import search
    from symopt.evaluation import toy

    config = toy.campaign(budget=30)
    config["campaign"]["stages"][0]["steps"] = 400
    busy = []
    stats = pool.stats.delivered
    campaign = search(config, seed=0, backend=pool.backend, run_dir=tmp_path,
                      progress=lambda state, _: busy.append(len(state.inflight)))
    assert campaign.stats.evaluated == 30
    records = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    search_ids = [r["id"] for r in records if r["stage"] == "small"]
    assert len(search_ids) == len(set(search_ids)) == 30
    # each result is accepted while the other candidates are still in flight (workers x max_in_flight - 1)
    assert max(busy) == pool.workers * pool.max_in_flight - 1
    # every training ran on the pool: the logged ones, and the start program's two reference scores
    assert pool.stats.delivered - stats == len(records) + 2
    serial = search(config, seed=0, run_dir=tmp_path / "replay", resume=False)
    assert serial.state.start.fitness == campaign.state.start.fitness  # the same training, in or out of Ray


def test_a_stage_polls_without_waiting(pool):
    """poll(): a finished candidate or None at once (the search takes what has arrived before using any)."""
    from symopt.programs import baselines

    stage = pool.backend(["toy_quadratic"], [0], None)
    assert stage.poll() is None  # nothing submitted
    stage.submit("first", baselines.get("sgd"))
    deadline = time.monotonic() + 60
    while (got := stage.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got is not None and got[0] == "first" and got[1].ok and np.isfinite(got[1].fitness)
    assert stage.poll() is None  # delivered once


def test_bench_rounds_on_one_and_on_all_workers(pool):
    from symopt.cli.bench_scale import candidates, timed_round

    texts = candidates(8)
    assert len(set(texts)) == 8
    try:
        pool.active = 1
        _, seconds = timed_round(pool, texts, "bench1")
        assert len(seconds) == 8
        with pytest.raises(ValueError):
            pool.active = 3
    finally:
        pool.active = pool.workers
    _, seconds = timed_round(pool, texts, "bench2")  # on both workers: every candidate comes back
    assert len(seconds) == 8


@pytest.mark.slow
def test_campaign_survives_a_killed_worker_and_a_removed_node(tmp_path):
    """A real search on a 3-node cluster: a worker SIGKILLed, then a busy node removed, then a node added.

    Head (0 CPUs) + 2 one-CPU worker nodes. The driver runs outside the checkout (Ray
    puts the driver's directory on the workers' path), so the workers can import
    symopt only from what :func:`connect` shipped. A driver is connected to one
    cluster at a time, so the scenario runs in a subprocess (this file as a script).
    """
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_token())
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, __file__, "multinode", str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records if r["stage"] == "small"]
    assert len(ids) == len(set(ids)) == out["budget"] == out["evaluated"]  # the campaign went on; each once
    assert out["stats"]["duplicates_dropped"] == 0 and out["stats"]["errors"] == 0
    assert out["stats"]["worker_deaths"] >= 2 and out["stats"]["resubmitted"] >= 1  # lost candidates re-sent
    assert out["killed_pid"] not in out["pids_after"]
    assert out["removed"] not in out["nodes_after"] and out["added"] in out["nodes_after"]
    assert out["auth_mode"] == "token"
    assert all("runtime_resources" in path for path in out["symopt_paths"])  # the code was shipped
    # The log is the campaign: replayed serially, it rebuilds the same search without training anything.
    assert out["replay_same"] and out["replayed"] == len(records)


def _token() -> str:
    try:
        from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

        return generate_new_authentication_token()
    except ImportError:  # pragma: no cover
        import secrets

        return secrets.token_hex(32)


def _multinode(run_dir: str) -> dict:
    """The multi-node campaign (see test_campaign_survives_a_killed_worker_and_a_removed_node)."""
    import ray
    from ray.cluster_utils import Cluster

    from symopt.distributed import EvaluatorPool, connect, describe
    from symopt.campaign import search
    from symopt.evaluation import toy

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        connect(address=cluster.address)
        pool = EvaluatorPool(workers=2, max_in_flight=2)
        infos = pool.wait_ready(timeout=120)
        config = toy.campaign(budget=50)
        config["campaign"]["stages"][0]["steps"] = 1500  # about 0.2 s a candidate
        done: dict = {}

        def faults(state, _replayed) -> None:
            n = state.stats.evaluated
            if n >= 8 and "killed_pid" not in done:
                victim = next(i for i in pool.worker_info() if i["slot"] == 0)
                done["killed_pid"] = victim["pid"]
                os.kill(victim["pid"], signal.SIGKILL)
            elif n >= 20 and "removed" not in done:
                victim = next(i for i in pool.worker_info() if i["slot"] == 1)
                node = next(x for x in nodes if x.node_id == victim["node"])
                cluster.remove_node(node)
                done["removed"] = node.node_id
            elif n >= 30 and "added" not in done:
                done["added"] = cluster.add_node(num_cpus=1).node_id

        campaign = search(config, seed=0, backend=pool.backend, run_dir=run_dir, progress=faults)
        infos_after = pool.wait_ready(timeout=120)
        replay = search(config, seed=0, run_dir=run_dir, resume=True)  # serial: everything is in the log
        out = {**done, "budget": 50, "evaluated": campaign.stats.evaluated, "stats": vars(pool.stats),
               "pids_after": [i["pid"] for i in infos_after], "nodes_after": [i["node"] for i in infos_after],
               "symopt_paths": [i["symopt"] for i in infos + infos_after], "auth_mode": describe()["auth_mode"],
               "replayed": replay.replayed,
               "replay_same": [e.as_json() for e in replay.history] == [e.as_json() for e in campaign.history]}
        pool.shutdown()
        return out
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__" and sys.argv[1:2] == ["multinode"]:
    print(json.dumps(_multinode(sys.argv[2])))

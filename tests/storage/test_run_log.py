"""Resume by replay: a campaign killed with SIGKILL continues from its log and ends as if never killed."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest
from tests.doubles import TOY_TOML as TOML, Shuffled

from symopt.campaign import campaign as campaign_module
from symopt.campaign import search
from symopt.evaluation import toy
from symopt.storage.run_dir import read_log

TOY = toy.campaign()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _lines(run_dir):
    return (run_dir / "evaluations.jsonl").read_text().splitlines()


def _same(a, b):
    assert [e.as_json() for e in a.history] == [e.as_json() for e in b.history]
    assert a.stats == b.stats and a.state.best == b.state.best and a.state.islands == b.state.islands
    assert [e.as_json() for e in a.hall_of_fame] == [e.as_json() for e in b.hall_of_fame]
    assert a.reference.as_json() == b.reference.as_json()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    return search(TOY, seed=1, run_dir=run_dir), run_dir


@pytest.mark.parametrize("cut", [1, 17, 43, 47])  # search stage (1, 17), funnel stage, validation
def test_resume_replays_to_the_uninterrupted_state(reference, tmp_path, cut):
    ref, ref_dir = reference
    lines = (ref_dir / "evaluations.jsonl").read_text().splitlines(keepends=True)
    shutil.copy(ref_dir / "config.json", tmp_path)
    torn = lines[cut][: len(lines[cut]) // 2]  # the writer was killed in the middle of this line
    (tmp_path / "evaluations.jsonl").write_text("".join(lines[:cut]) + torn)
    with pytest.warns(RuntimeWarning, match="torn last line"):
        resumed = search(TOY, seed=1, run_dir=tmp_path, resume=True)
    assert resumed.replayed == cut
    _same(ref, resumed)
    assert (tmp_path / "evaluations.jsonl").read_text() == "".join(lines)  # nothing lost, nothing twice


def test_resume_of_a_finished_run_trains_nothing(reference, tmp_path):
    ref, ref_dir = reference
    for name in ("config.json", "evaluations.jsonl"):
        shutil.copy(ref_dir / name, tmp_path)
    resumed = search(TOY, seed=1, run_dir=tmp_path, resume=True)
    _same(ref, resumed)
    assert resumed.replayed == len(_lines(ref_dir)) and _lines(tmp_path) == _lines(ref_dir)


def _clock(monkeypatch, start: float, end: float) -> None:
    """The campaign's clock reads ``start`` when it starts and ``end`` at every later reading (no real time)."""
    readings = iter([start])
    monkeypatch.setattr(campaign_module, "time", types.SimpleNamespace(perf_counter=lambda: next(readings, end)))


def test_a_resumed_run_counts_the_wall_time_of_its_earlier_calls(reference, tmp_path, monkeypatch):
    ref, ref_dir = reference
    for name in ("config.json", "evaluations.jsonl", "hall_of_fame.json"):
        shutil.copy(ref_dir / name, tmp_path)
    earlier = json.loads((tmp_path / "hall_of_fame.json").read_text())["seconds"]
    assert earlier == ref.seconds > 0
    _clock(monkeypatch, 100.0, 107.5)  # this call takes 7.5 s
    resumed = search(TOY, seed=1, run_dir=tmp_path, resume=True)
    assert resumed.seconds == earlier + 7.5
    assert json.loads((tmp_path / "hall_of_fame.json").read_text())["seconds"] == resumed.seconds
    (tmp_path / "hall_of_fame.json").write_text("{")  # an output: a bad one costs the earlier time, not the run
    _clock(monkeypatch, 200.0, 202.0)
    with pytest.warns(RuntimeWarning, match="hall_of_fame.json.*earlier calls' wall time is not counted"):
        again = search(TOY, seed=1, run_dir=tmp_path, resume=True)
    assert again.seconds == 2.0  # this call's time only
    _same(ref, again)


def test_existing_log_needs_resume_and_the_same_config(reference, tmp_path):
    _, ref_dir = reference
    for name in ("config.json", "evaluations.jsonl"):
        shutil.copy(ref_dir / name, tmp_path)
    before = _lines(tmp_path)
    with pytest.raises(FileExistsError, match="pass --resume"):
        search(TOY, seed=1, run_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different configuration .*campaign.seed: 1 in the logged run, 2 now"):
        search(TOY, seed=2, run_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="campaign.budget"):
        search(TOY, seed=1, budget=30, run_dir=tmp_path, resume=True)
    assert _lines(tmp_path) == before
    with pytest.raises(ValueError, match="needs a run directory"):
        search(TOY, seed=1, resume=True)
    (tmp_path / "evaluations.jsonl").write_text("{}\n" + "\n".join(before) + "\n")
    with pytest.raises(ValueError, match="line 1 is corrupt"):
        search(TOY, seed=1, run_dir=tmp_path, resume=True)


@pytest.mark.slow
def test_resume_with_a_larger_budget_goes_on(reference, tmp_path):
    """A finished run resumed with a larger budget continues where it ended: as one run with that budget."""
    ref, ref_dir = reference
    for name in ("config.json", "evaluations.jsonl"):
        shutil.copy(ref_dir / name, tmp_path)
    longer = search(TOY, seed=1, budget=70, run_dir=tmp_path, resume=True)
    straight = search(TOY, seed=1, budget=70)  # serial, batch 1: the 41st child comes after the 40th's result
    _same(straight, longer)
    lines, old = _lines(tmp_path), _lines(ref_dir)
    assert lines[: len(old)] == old  # nothing logged is rewritten
    records = [json.loads(x) for x in lines]
    keys = [(r["stage"], r["id"]) for r in records]
    assert len(keys) == len(set(keys)) and len([k for k in keys if k[0] == "small"]) == 70
    assert json.loads((tmp_path / "config.json").read_text())["campaign"]["budget"] == 70
    again = search(TOY, seed=1, budget=70, run_dir=tmp_path, resume=True)  # the extended run, resumed: all logged
    _same(straight, again)
    assert _lines(tmp_path) == lines


def test_resume_on_an_empty_run_dir_starts_afresh(reference, tmp_path):
    ref, _ = reference
    _same(ref, search(TOY, seed=1, run_dir=tmp_path, resume=True))
    assert json.loads((tmp_path / "config.json").read_text())["campaign"]["seed"] == 1


def _cli(*args, serial=True):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "symopt.cli", "search", *["--serial"] * serial, *map(str, args)], env


def _kill_after(cmd, env, cwd, log, lines: int, timeout: float) -> tuple[bytes, list[str]]:
    """Run ``cmd``, SIGKILL it once ``log`` holds ``lines`` lines; the log's bytes and its complete lines."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the campaign finished (or failed) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = log.read_bytes()
    return killed, killed[: killed.rfind(b"\n") + 1].decode().splitlines()


@pytest.mark.slow
def test_cli_resume_after_sigkill(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    run_dir, ref_dir = tmp_path / "run", tmp_path / "ref"
    cmd, env = _cli(config, "--seed", 5, "--run-dir", run_dir)
    log = run_dir / "evaluations.jsonl"
    killed, done = _kill_after(cmd, env, tmp_path, log, 30, timeout=60)
    assert 30 <= len(done) < 600

    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "pass --resume" in out.stderr and log.read_bytes() == killed
    changed, _ = _cli(config, "--seed", 6, "--run-dir", run_dir, "--resume")
    out = subprocess.run(changed, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "campaign.seed: 5 in the logged run, 6 now" in out.stderr
    out = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "campaign tiny: 600 trained" in out.stdout and "\r" not in out.stdout  # plain lines off a terminal

    records, _ = read_log(log)
    lines = _lines(run_dir)
    assert lines[: len(done)] == done  # the pre-kill evaluations kept, as they were
    keys = [(r.stage, r.id) for r in records]
    assert len(keys) == len(set(keys))  # none twice
    assert len([k for k in keys if k[0] == "small"]) == 600

    ref = search(str(config), seed=5, run_dir=ref_dir)  # the same campaign, never killed
    assert lines == _lines(ref_dir)
    saved = json.loads((run_dir / "hall_of_fame.json").read_text())
    assert saved["replayed"] == len(done)
    assert saved["stats"] == ref.stats.as_dict()
    assert saved["hall_of_fame"] == [e.as_json() for e in ref.hall_of_fame]
    assert saved["reference"] == ref.reference.as_json()


@pytest.mark.slow
def test_cli_search_on_the_ray_pool_logs_each_candidate_once(ray_session, tmp_path, capsys):
    """The ``--workers 2`` path (in process, on the session's Ray): steady-state, each id once, resumable."""
    import argparse

    from symopt.cli.search import main

    config = tmp_path / "ray.toml"
    config.write_text('name = "ray"\n[space]\nfunctions = ["+", "-", "*", "/", "sqrt", "square", "sign", '
                      '"interpolate"]\nmax_length = 8\n[campaign]\npopulation = 6\ntournament = 2\nbudget = 16\n'
                      'hall_of_fame = 2\n[[campaign.stages]]\ntasks = ["quadratic_illcond"]\nsteps = 50\n')
    run_dir = tmp_path / "run"
    args = argparse.Namespace(config=str(config), budget=None, seed=0, run_dir=str(run_dir), resume=False,
                              workers=2, address=None, serial=False)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "campaign ray: 16 trained" in out and "ray: 2 workers, 0 lost" in out
    records, _ = read_log(run_dir / "evaluations.jsonl")
    assert len(records) == 16 and len({r.id for r in records}) == 16
    args.resume = True  # a finished run resumed on the pool replays everything and trains nothing
    assert main(args) == 0
    assert json.loads((run_dir / "hall_of_fame.json").read_text())["replayed"] == 16
    assert read_log(run_dir / "evaluations.jsonl")[0] == records


def _orphaned_ray_agents() -> set[int]:
    """Ray agent processes whose parent died (init adopted them)."""
    out = set()
    for proc in pathlib.Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmd.startswith(b"ray::") and ppid == 1:
            out.add(int(proc.name))
    return out


@pytest.mark.slow
def test_cli_resume_of_a_ray_campaign_after_sigkill(tmp_path):
    """``--workers 2`` on its own local Ray, SIGKILLed; resumed on 1 worker: nothing lost, nothing twice."""
    config = tmp_path / "tiny.toml"
    config.write_text(TOML.replace("budget = 600", "budget = 150").replace(
        'tasks = ["toy_quadratic"]', 'tasks = ["toy_quadratic"]\nsteps = 300'))
    run_dir = tmp_path / "run"
    cmd, env = _cli(config, "--seed", 5, "--run-dir", run_dir, serial=False)
    log = run_dir / "evaluations.jsonl"
    orphans = _orphaned_ray_agents()
    _, done = _kill_after(cmd + ["--workers", "2"], env, tmp_path, log, 20, timeout=120)
    time.sleep(1)
    for pid in _orphaned_ray_agents() - orphans:  # Ray 2.60 leaves its node agents behind a SIGKILLed driver
        os.kill(pid, signal.SIGKILL)
    assert 20 <= len(done) < 150

    out = subprocess.run(cmd + ["--workers", "1", "--resume"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "campaign tiny: 150 trained" in out.stdout and "ray: 1 worker," in out.stdout
    lines = _lines(run_dir)
    assert lines[: len(done)] == done  # the pre-kill evaluations kept, as they were
    records, _ = read_log(log)
    keys = [(r.stage, r.id) for r in records]
    assert len(keys) == len(set(keys))  # none twice
    assert len([k for k in keys if k[0] == "small"]) == 150
    assert json.loads((run_dir / "hall_of_fame.json").read_text())["replayed"] == len(done)


@pytest.mark.slow
def test_resume_mid_batch_ends_in_the_uninterrupted_state(tmp_path):
    """Batch 4: the driver dies after 2 of a batch's 4 results are logged; the other 2 are trained first."""
    config = toy.campaign()
    config["campaign"]["batch"] = 4
    ref = search(config, seed=3, run_dir=tmp_path / "ref")
    lines = _lines(tmp_path / "ref")
    proposed = [json.loads(x).get("proposed") for x in lines]
    cut = next(i for i in range(2, len(lines)) if proposed[i] == proposed[i - 1] == proposed[i + 1])
    (tmp_path / "cut").mkdir()
    shutil.copy(tmp_path / "ref" / "config.json", tmp_path / "cut")
    (tmp_path / "cut" / "evaluations.jsonl").write_text("\n".join(lines[:cut]) + "\n")
    resumed = search(config, seed=3, run_dir=tmp_path / "cut", resume=True)
    _same(ref, resumed)
    assert _lines(tmp_path / "cut") == lines
    derived = ["lineage.jsonl"] + [f"populations/{p.name}" for p in (tmp_path / "ref" / "populations").iterdir()]
    assert len(derived) > 5
    for name in derived:  # rewritten by the replay, the same as the uninterrupted run's
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "ref" / name).read_text(), name


@pytest.mark.slow
def test_an_out_of_order_run_resumes_on_another_backend(tmp_path):
    """Results that came back in any order replay exactly; the rest is trained once, on the serial backend."""
    backend = lambda tasks, seeds, steps, grid, functions: Shuffled(tasks, seeds, steps)  # noqa: E731
    ref = search(TOY, seed=1, backend=backend, run_dir=tmp_path / "ref")
    lines = _lines(tmp_path / "ref")
    search_lines = [json.loads(x) for x in lines if json.loads(x)["stage"] == "small"]
    assert [r["id"] for r in search_lines] != sorted(r["id"] for r in search_lines)  # really out of order

    (tmp_path / "full").mkdir()
    for name in ("config.json", "evaluations.jsonl"):
        shutil.copy(tmp_path / "ref" / name, tmp_path / "full")
    replayed = search(TOY, seed=1, run_dir=tmp_path / "full", resume=True)  # serial: nothing left to train
    _same(ref, replayed)
    assert _lines(tmp_path / "full") == lines

    cut = 25
    (tmp_path / "cut").mkdir()
    shutil.copy(tmp_path / "ref" / "config.json", tmp_path / "cut")
    (tmp_path / "cut" / "evaluations.jsonl").write_text("\n".join(lines[:cut]) + "\n")
    resumed = search(TOY, seed=1, run_dir=tmp_path / "cut", resume=True)
    after = [json.loads(x) for x in _lines(tmp_path / "cut")]
    assert after[:cut] == [json.loads(x) for x in lines[:cut]]  # nothing logged is lost or rewritten
    ids = [r["id"] for r in after if r["stage"] == "small"]
    assert len(ids) == len(set(ids)) == 40 == resumed.stats.evaluated  # each candidate once, budget kept
    assert resumed.replayed == cut


@pytest.mark.slow
def test_progress_line_on_a_terminal(tmp_path):
    """On a pseudo-terminal `symopt search` redraws one progress line (off a terminal: plain lines,
    tests/cli/test_progress.py)."""
    import pty

    config = tmp_path / "tiny.toml"
    config.write_text(TOML.replace("budget = 600", "budget = 300").replace(
        'tasks = ["toy_quadratic"]', 'tasks = ["toy_quadratic"]\nsteps = 300'))
    cmd, env = _cli(config, "--run-dir", tmp_path / "run")
    main, child = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdin=child, stdout=child, stderr=subprocess.DEVNULL)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=120) == 0
    text = out.decode(errors="replace")
    redraws = [part for part in text.split("\r") if part.startswith("trained ")]
    assert len(redraws) >= 2, text[-2000:]
    last = redraws[-1]
    assert last.startswith("trained 300/300  best ")
    for field in ("candidates/s", " left", "cache hits", "workers serial"):
        assert field in last
    assert "campaign tiny: 300 trained" in text


@pytest.mark.slow
def test_funnel_checks_during_the_search_replay_to_the_same_curve(tmp_path):
    config = toy.campaign()
    config["campaign"]["check_interval"] = 10
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref = search(config, seed=1, run_dir=ref_dir)
    curve = json.loads((ref_dir / "meta_validation.json").read_text())
    assert [p["trained"] for p in curve] == [10, 20, 30, 40]
    for key in ("small", "large", "best_validation"):
        values = [p[key] for p in curve]
        assert values == sorted(values)  # best so far
    assert curve[-1]["pick"] in {e.id for e in ref.hall_of_fame}
    lines = (ref_dir / "evaluations.jsonl").read_text().splitlines(keepends=True)
    records = [json.loads(x) for x in lines]
    for stage in ("large", "validation"):  # the checks never train a candidate twice on a stage
        ids = [r["id"] for r in records if r["stage"] == stage]
        assert len(ids) == len(set(ids))
    first_check = next(i for i, r in enumerate(records) if r["stage"] == "large")
    assert sum(r["stage"] == "small" for r in records[:first_check]) == 10  # the check ran at 10 trainings
    cut = first_check + 2  # killed inside the first check
    cut_dir.mkdir()
    shutil.copy(ref_dir / "config.json", cut_dir)
    (cut_dir / "evaluations.jsonl").write_text("".join(lines[:cut]))
    resumed = search(config, seed=1, run_dir=cut_dir, resume=True)
    _same(ref, resumed)
    assert json.loads((cut_dir / "meta_validation.json").read_text()) == curve
    assert (cut_dir / "evaluations.jsonl").read_text() == "".join(lines)


JAX_CAMPAIGN = {  # the real evaluator on its cheapest proxy task: one executable (seconds to compile), then ms
    "name": "jax", "space": {"functions": ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate"], "max_length": 8},
    "campaign": {"start": "sgd", "population": 6, "tournament": 2, "budget": 16, "hall_of_fame": 2,
                 "stages": [{"name": "small", "tasks": ["quadratic_illcond"], "steps": 50, "lr_factors": [1.0]}]}}


class _Stop(Exception):
    """Raised from the progress callback: the campaign stops where a kill would have stopped it."""


def test_resume_on_the_jax_evaluator_ends_as_the_uninterrupted_run(tmp_path):
    """A serial campaign on the JAX evaluator, stopped mid-search and resumed: the same log and hall of fame as the
    run never stopped (the funnel's replay is shown on the toy tasks above)."""
    ref_dir = tmp_path / "ref"
    ref = search(JAX_CAMPAIGN, seed=0, run_dir=ref_dir)
    lines = _lines(ref_dir)
    fitness = [json.loads(x)["fitness"] for x in lines]
    assert len(lines) == 16 and len(set(fitness)) > 3  # real trainings, not all diverged

    def stop(state, _replayed):
        if state.stats.evaluated >= 7:
            raise _Stop

    with pytest.raises(_Stop):
        search(JAX_CAMPAIGN, seed=0, run_dir=tmp_path / "stopped", progress=stop)
    assert _lines(tmp_path / "stopped") == lines[:7]
    resumed = search(JAX_CAMPAIGN, seed=0, run_dir=tmp_path / "stopped", resume=True)
    assert resumed.replayed == 7
    _same(ref, resumed)
    assert _lines(tmp_path / "stopped") == lines
    saved = json.loads((tmp_path / "stopped" / "hall_of_fame.json").read_text())
    assert saved["hall_of_fame"] == json.loads((ref_dir / "hall_of_fame.json").read_text())["hall_of_fame"]

"""Resume by replay: a campaign killed with SIGKILL continues from its log and ends as if never killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from symopt.search import search, toy
from symopt.search.campaign import read_log

TOY = toy.campaign()
TOML = """name = "tiny"
[space]
functions = ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate", "abs"]
max_length = 10
[campaign]
start = "sgd"
population = 12
tournament = 4
budget = 600
hall_of_fame = 3
validation = ["toy_quadratic_noisy"]
[[campaign.stages]]
name = "small"
tasks = ["toy_quadratic"]
[[campaign.stages]]
name = "large"
tasks = ["toy_quadratic_large"]
promote = 6
"""
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_resume_on_an_empty_run_dir_starts_afresh(reference, tmp_path):
    ref, _ = reference
    _same(ref, search(TOY, seed=1, run_dir=tmp_path, resume=True))
    assert json.loads((tmp_path / "config.json").read_text())["campaign"]["seed"] == 1


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "symopt.cli", "search", *map(str, args)], env


def test_cli_resume_after_sigkill(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    run_dir, ref_dir = tmp_path / "run", tmp_path / "ref"
    cmd, env = _cli(config, "--seed", 5, "--run-dir", run_dir)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = run_dir / "evaluations.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= 30:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the campaign finished (or failed) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = log.read_bytes()
    done = killed[: killed.rfind(b"\n") + 1].decode().splitlines()
    assert 30 <= len(done) < 600

    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "pass --resume" in out.stderr and log.read_bytes() == killed
    changed, _ = _cli(config, "--seed", 6, "--run-dir", run_dir, "--resume")
    out = subprocess.run(changed, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "campaign.seed: 5 in the logged run, 6 now" in out.stderr
    out = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "campaign tiny: 600 trained" in out.stdout and "\r" not in out.stdout  # no progress line off a terminal

    records, _ = read_log(log)
    lines = _lines(run_dir)
    assert lines[: len(done)] == done  # the pre-kill evaluations kept, as they were
    keys = [(r["stage"], r["id"]) for r in records]
    assert len(keys) == len(set(keys))  # none twice
    assert len([k for k in keys if k[0] == "small"]) == 600

    ref = search(str(config), seed=5, run_dir=ref_dir)  # the same campaign, never killed
    assert lines == _lines(ref_dir)
    saved = json.loads((run_dir / "hall_of_fame.json").read_text())
    assert saved["replayed"] == len(done)
    assert saved["stats"] == ref.stats.as_dict()
    assert saved["hall_of_fame"] == [e.as_json() for e in ref.hall_of_fame]
    assert saved["reference"] == ref.reference.as_json()


def test_cli_search_on_the_ray_pool_logs_each_candidate_once(ray_session, tmp_path, capsys):
    """The ``--workers 2`` path (in process, on the session's Ray): batch raised to 2 x workers, each id once."""
    import argparse

    from symopt.search.cli_search import main_search

    config = tmp_path / "ray.toml"
    config.write_text('name = "ray"\n[space]\nfunctions = ["+", "-", "*", "/", "sqrt", "square", "sign", '
                      '"interpolate"]\nmax_length = 8\n[campaign]\npopulation = 6\ntournament = 2\nbudget = 16\n'
                      'hall_of_fame = 2\n[[campaign.stages]]\ntasks = ["quadratic_illcond"]\nsteps = 50\n')
    run_dir = tmp_path / "run"
    args = argparse.Namespace(config=str(config), budget=None, seed=0, run_dir=str(run_dir), resume=False,
                              workers=2, address=None)
    assert main_search(args) == 0
    assert "campaign ray: 16 trained" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["campaign"]["batch"] == 4
    records, _ = read_log(run_dir / "evaluations.jsonl")
    assert len(records) == 16 and len({r["id"] for r in records}) == 16
    args.resume = True  # a finished run resumed on the pool replays everything and trains nothing
    assert main_search(args) == 0
    assert json.loads((run_dir / "hall_of_fame.json").read_text())["replayed"] == 16
    assert read_log(run_dir / "evaluations.jsonl")[0] == records

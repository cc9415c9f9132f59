"""What symopt guarantees for a run directory, on real processes and real files.

One writer (a second driver is refused while the first lives, and not after it is
SIGKILLed), durable writes (fsync of file and directory, no link followed), readers
that check what they read (one line naming file, line or field), a full disk or an
unwritable --run-dir as one line, and a clean resume after a full disk.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import signal
import stat
import subprocess
import time

import pytest
from tests.storage.test_run_log import TOML as RESUME_TOML
from tests.storage.test_run_log import _cli

from symopt.cli import main
from symopt.campaign import search
from symopt.evaluation import toy
from symopt.storage.durable import AppendLog, WriteError
from symopt.storage.run_dir import RunError, read_lineage, read_log

TOML = RESUME_TOML.replace("budget = 600", "budget = 100")


def _keys(log: pathlib.Path) -> list[tuple[str, int]]:
    return [(r.stage, r.id) for r in read_log(log)[0]]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished toy campaign's run directory (hall of fame, lineage, log, config)."""
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    search(toy.campaign(budget=30), seed=0, run_dir=run_dir)
    return run_dir


# -- one writer ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_driver_is_refused_while_the_first_lives_and_not_after_it_is_killed(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    run_dir = tmp_path / "run"
    log = run_dir / "evaluations.jsonl"
    cmd, env = _cli(config, "--seed", 3, "--run-dir", run_dir)
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while first.poll() is None and time.monotonic() < deadline:
        if log.exists() and log.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGSTOP)  # alive, holding the run directory, writing nothing
    try:
        assert first.poll() is None, "the first driver ended before it could be paused"
        before = log.read_bytes()
        for extra in (["--resume"], []):
            out = subprocess.run(cmd + extra, env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 1, out.stderr
            assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
            assert f"run directory {run_dir} is in use by another symopt process (pid {first.pid}" in out.stderr
        assert log.read_bytes() == before  # the refused drivers wrote nothing
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    # the kernel released the lock with the process: no stale lock, and the resume ends as a run never killed
    out = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    keys = _keys(log)
    assert len(keys) == len(set(keys))
    ref = tmp_path / "ref"
    search(str(config), seed=3, run_dir=ref)
    assert log.read_text() == (ref / "evaluations.jsonl").read_text()


# -- durable writes ----------------------------------------------------------------------------------


def test_files_are_fsynced_then_renamed_and_their_directory_fsynced(tmp_path, monkeypatch):
    """A power cut cannot be produced in a test: the fsync calls are recorded (the real ones still run)."""
    synced: list[tuple[int, bool]] = []  # (inode, is a directory), in call order
    real_fsync = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run_dir = tmp_path / "run"
    search(toy.campaign(budget=12), seed=0, run_dir=run_dir)
    directory = run_dir.stat().st_ino
    for name in ("config.json", "evaluations.jsonl", "hall_of_fame.json", "meta_validation.json",
                 "lineage.jsonl", "populations/0000012.json"):
        path = run_dir / name
        inode = path.stat().st_ino
        assert (inode, False) in synced, f"{name} was never fsynced"
        last = max(i for i, s in enumerate(synced) if s == (inode, False))
        folder = path.parent.stat().st_ino
        assert (folder, True) in synced[last:], f"{name}: its directory was not fsynced after it"
    assert (tmp_path.stat().st_ino, True) in synced  # the new run directory's own entry
    assert (directory, True) in synced


def test_results_that_arrive_together_share_one_fsync_of_the_log(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real_fsync(fd)))
    config = toy.campaign(budget=13)
    config["campaign"]["batch"] = 4  # serial: each batch of 4 results arrives together
    search(config, seed=0, run_dir=tmp_path)
    log = tmp_path / "evaluations.jsonl"
    stages = [json.loads(line)["stage"] for line in log.read_text().splitlines()]
    # opening, the start program, 3 batches of 4, then one per funnel or validation training
    assert synced.count(log.stat().st_ino) == 1 + 1 + 3 + sum(s != "small" for s in stages)
    assert stages.count("small") == 13


def test_a_failed_group_commit_cuts_its_lines_back(tmp_path, monkeypatch):
    """A failing fsync cannot be produced on demand: os.fsync is made to fail once."""
    log = AppendLog(tmp_path / "log.jsonl")
    log.append('{"a": 1}')
    log.append('{"b": 2}', sync=False)
    log.append('{"c": 3}', sync=False)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(WriteError, match="log.jsonl"):
        log.sync()
    monkeypatch.undo()
    assert (tmp_path / "log.jsonl").read_text() == '{"a": 1}\n'
    log.append('{"d": 4}', sync=False)
    log.sync()
    assert (tmp_path / "log.jsonl").read_text() == '{"a": 1}\n{"d": 4}\n'
    log.close()


def test_a_planted_link_at_a_temporary_name_is_not_followed(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    for name in ("config.json.tmp", "hall_of_fame.json.tmp", "meta_validation.json.tmp"):
        (run_dir / name).symlink_to(victim)
    search(toy.campaign(budget=12), seed=0, run_dir=run_dir)
    assert victim.read_text() == "keep me\n"
    for name in ("config.json", "hall_of_fame.json"):
        assert not (run_dir / name).is_symlink()
        json.loads((run_dir / name).read_text())
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


# -- a full disk, an unwritable run directory ----------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_run_resumes_cleanly(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    run_dir = tmp_path / "run"
    cmd, env = _cli(config, "--seed", 4, "--run-dir", run_dir)

    def small_files():  # ulimit -f 8: no file of the process may grow past 8 KiB
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"symopt search: cannot write {run_dir}/") and "File too large" in out.stderr
    assert "--resume" in out.stderr
    log = (run_dir / "evaluations.jsonl").read_bytes()
    assert log and log.endswith(b"\n")  # the log ends on a whole line: the failed write was cut off

    out = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "torn" not in out.stderr, out.stderr
    ref = tmp_path / "ref"
    search(str(config), seed=4, run_dir=ref)
    assert (run_dir / "evaluations.jsonl").read_bytes() == (ref / "evaluations.jsonl").read_bytes()
    assert (run_dir / "lineage.jsonl").read_bytes() == (ref / "lineage.jsonl").read_bytes()


@pytest.mark.parametrize("case", ["a file", "under a file", "read-only"])
def test_an_unwritable_run_dir_is_one_line(tmp_path, capsys, case):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    a_file = tmp_path / "file"
    a_file.write_text("")
    if case == "a file":
        run_dir, expected = a_file, f"run directory {a_file} is a file, not a directory"
    elif case == "under a file":
        run_dir, expected = a_file / "run", f"cannot write {a_file / 'run'}: Not a directory"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        run_dir, expected = locked / "run", f"cannot write {locked / 'run'}: Permission denied"
    assert main(["search", str(config), "--serial", "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symopt search: ") and expected in err, err


# -- readers that check what they read ------------------------------------------------------------------


def _copy(toy_run, tmp_path) -> pathlib.Path:
    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir)
    return run_dir


def _edit_json(path: pathlib.Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


HALL_OF_FAME_DAMAGE = {  # what is broken -> (edit, the field the error names)
    "program does not parse": (lambda d: d["hall_of_fame"][0].update(program="def train(g):\n    return sqr(g)\n"),
                               "'hall_of_fame[0].program': not a program"),
    "simplified does not parse": (lambda d: d["hall_of_fame"][1].update(simplified="x = 1"),
                                  "'hall_of_fame[1].simplified': not a program"),
    "fitness is text": (lambda d: d["hall_of_fame"][0]["fitness"].update(small="high"),
                        "'hall_of_fame[0].fitness.small': expected a number or null, got str 'high'"),
    "reference is text": (lambda d: d.update(reference="adamw"),
                          "'reference': expected an object or null, got str 'adamw'"),
    "validation is text": (lambda d: d["hall_of_fame"][0].update(validation="1.0"),
                           "'hall_of_fame[0].validation': expected a number or null"),
    "entries are an object": (lambda d: d.update(hall_of_fame={}), "'hall_of_fame': expected a list"),
    "id is negative": (lambda d: d["hall_of_fame"][0].update(id=-1), "'hall_of_fame[0].id': expected an integer >= 0"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(HALL_OF_FAME_DAMAGE))
@pytest.mark.parametrize("command", ["inspect", "export", "report", "compare"])
def test_every_reader_answers_a_bad_hall_of_fame_with_one_line(toy_run, tmp_path, capsys, command, damage):
    run_dir = _copy(toy_run, tmp_path)
    edit, field = HALL_OF_FAME_DAMAGE[damage]
    _edit_json(run_dir / "hall_of_fame.json", edit)
    argv = {"inspect": ["inspect", str(run_dir)],
            "export": ["export", str(run_dir), "-o", str(tmp_path / "out.py")],
            "report": ["report", str(run_dir), "-o", str(tmp_path / "report")],
            "compare": ["compare", f"{run_dir}:1", "adamw", "--tasks", "quadratic_illcond"]}[command]
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith(f"symopt {command}: {run_dir / 'hall_of_fame.json'}: "), err
    assert field in err and "--resume writes it again" in err
    assert not (tmp_path / "out.py").exists() and not (tmp_path / "report").exists()


def test_a_corrupt_lineage_line_is_an_error_and_a_torn_last_line_a_warning(toy_run, tmp_path, capsys):
    run_dir = _copy(toy_run, tmp_path)
    path = run_dir / "lineage.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + '{"id": 9, "parent": 1, "program": "x", "fi\n' + "".join(lines[4:]))
    assert main(["inspect", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: line 4 is corrupt (not JSON" in err
    path.write_text("".join(lines[:3]) + json.dumps({**json.loads(lines[3]), "parent": "1"}) + "\n"
                    + "".join(lines[4:]))
    assert main(["inspect", str(run_dir)]) == 1
    assert f"{path}: line 4 is corrupt: field 'parent': expected an integer >= 0 or null, got str '1'" \
        in capsys.readouterr().err
    path.write_text("".join(lines[:-1]) + lines[-1][:20])  # the writer died in the middle of the last line
    with pytest.warns(RuntimeWarning, match="torn last line"):
        lineage = read_lineage(run_dir)
    assert len(lineage) == len({json.loads(x)["id"] for x in lines[:-1]})
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert main(["inspect", str(run_dir)]) == 0


LOG_DAMAGE = {
    "fitness is text": ({"fitness": "0.5"}, "field 'fitness': expected a number or null, got str '0.5'"),
    "id is a float": ({"id": 3.0}, "field 'id': expected an integer >= 0, got float 3.0"),
    "program does not parse": ({"program": "def train(g):\n    return g +\n"}, "field 'program': not a program"),
    "stage is missing": ({"stage": None}, "field 'stage': expected text, got NoneType None"),
    "proposed is text": ({"proposed": "7"}, "field 'proposed': expected an integer >= 0"),
}


@pytest.mark.parametrize("damage", sorted(LOG_DAMAGE))
def test_resume_and_report_answer_a_bad_log_record_with_one_line(toy_run, tmp_path, capsys, damage):
    run_dir = _copy(toy_run, tmp_path)
    path = run_dir / "evaluations.jsonl"
    lines = path.read_text().splitlines()
    change, expected = LOG_DAMAGE[damage]
    lines[4] = json.dumps({**json.loads(lines[4]), **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match=f"line 5 is corrupt: {expected}"):
        read_log(path)
    with pytest.raises(RunError, match="line 5 is corrupt"):
        search(toy.campaign(budget=30), seed=0, run_dir=run_dir, resume=True)
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"symopt report: {path}: line 5 is corrupt: {expected}"), err
    lines[4], lines[-1] = lines[-1], lines[4]  # a last line that is whole JSON of the wrong shape is not "torn"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match=f"line {len(lines)} is corrupt"):
        read_log(path)


def test_a_bad_config_json_is_one_line_for_resume_and_report(toy_run, tmp_path, capsys):
    run_dir = _copy(toy_run, tmp_path)
    (run_dir / "config.json").write_text('{"campaign": {"budget": "30"}}')
    with pytest.raises(RunError, match=r"config.json: field 'campaign.budget': expected an integer >= 0, got str"):
        search(toy.campaign(budget=30), seed=0, run_dir=run_dir, resume=True)
    (run_dir / "config.json").write_text("{not json")
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run_dir / 'config.json'}: not valid JSON" in err


def test_the_hall_of_fame_reads_back_as_the_dataclasses_that_wrote_it(tmp_path, monkeypatch):
    from symopt.storage import run_dir
    from symopt.storage.run_dir import HallOfFame, HallOfFameEntry, read_hall_of_fame

    campaign = search(toy.campaign(budget=12), seed=0, run_dir=tmp_path / "run")
    read = read_hall_of_fame(tmp_path / "run")
    assert isinstance(read, HallOfFame) and all(isinstance(e, HallOfFameEntry) for e in read.entries)
    assert read.entries == campaign.hall_of_fame and read.reference == campaign.reference
    assert read.stats == campaign.stats.as_dict() and read.seconds == campaign.seconds
    assert read.replayed == campaign.replayed == 0
    texts, real = [], run_dir.parse
    monkeypatch.setattr(run_dir, "parse", lambda text: texts.append(text) or real(text))
    read_hall_of_fame(tmp_path / "run")
    assert len(texts) == len(set(texts))  # each program text parsed once: the check's parse is the entry's


def test_readers_return_typed_records_that_write_the_same_json(toy_run):
    """read_log gives LogRecords (each distinct program text parsed once) whose JSON is the line as written;
    read_meta_validation gives CheckPoints, read_lineage the evolution's Events, read_config a RunConfig."""
    from symopt.evolve.evolution import Event
    from symopt.storage.records import CheckPoint, LogRecord, RunConfig
    from symopt.storage.run_dir import read_config, read_meta_validation

    run_dir = toy_run
    lines = (run_dir / "evaluations.jsonl").read_text().splitlines()
    records, _ = read_log(run_dir / "evaluations.jsonl")
    assert all(isinstance(r, LogRecord) for r in records)
    assert [json.dumps(r.as_json()) for r in records] == lines
    by_text = {}
    for r in records:
        assert by_text.setdefault(str(r.program), r.program) is r.program  # one parse per text
    lineage = read_lineage(run_dir)
    assert lineage and all(isinstance(e, Event) and e.id == i for i, e in lineage.items())
    config = read_config(run_dir)
    assert isinstance(config, RunConfig) and config.budget == config.data["campaign"]["budget"]
    assert config.resolved("config.json").campaign.budget == config.budget
    point = CheckPoint(10, {"small": 0.5, "large": None}, pick=3, pick_validation=0.25, best_validation=0.5)
    assert CheckPoint.from_json(json.loads(json.dumps(point.as_json()))) == point
    assert list(point.as_json()) == ["trained", "small", "large", "pick", "pick_validation", "best_validation"]
    if (run_dir / "meta_validation.json").exists():
        curve = read_meta_validation(run_dir)
        assert [p.as_json() for p in curve] == json.loads((run_dir / "meta_validation.json").read_text())

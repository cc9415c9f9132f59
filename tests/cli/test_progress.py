"""`symopt search`'s progress as it goes (symopt/cli/progress.py): plain lines off a terminal, a live line on
one, nothing with --quiet, and the same run directory in every case."""

import io
import types

from tests.doubles import TOY_TOML
from symopt.cli import main
from symopt.cli.progress import PLAIN_LINES, Progress, check_line
from symopt.storage.records import CheckPoint

TOML = TOY_TOML.replace("budget = 600", "budget = 40\ncheck_interval = 20")


def _state(evaluated: int, best: float = 0.25, hits: float = 0.5):
    stats = types.SimpleNamespace(evaluated=evaluated, cache_hit_rate=hits)
    return types.SimpleNamespace(stats=stats, best=types.SimpleNamespace(fitness=best))


def _files(run_dir):
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_a_serial_campaign_prints_plain_lines_and_its_funnel_checks_and_quiet_prints_none(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    assert main(["search", str(config), "--serial", "--seed", "0", "--run-dir", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    trained = [line for line in lines if line.startswith("trained ")]
    assert 1 <= len(trained) <= PLAIN_LINES and trained[-1].startswith("trained 40/40  best ")
    for field in ("candidates/s", " left", "cache hits", "workers serial"):
        assert field in trained[-1]
    checks = [line for line in lines if line.startswith("funnel check at ")]
    assert [c.split(" trained")[0] for c in checks] == ["funnel check at 20", "funnel check at 40"]
    assert "best small " in checks[0] and ", large " in checks[0] and "validation: pick id " in checks[-1]
    assert "\r" not in out and lines.index(checks[-1]) < lines.index(next(x for x in lines if x.startswith("campaign")))

    assert main(["search", str(config), "--serial", "--seed", "0", "--run-dir", str(tmp_path / "b"), "--quiet"]) == 0
    quiet = capsys.readouterr().out
    assert not [line for line in quiet.splitlines() if line.startswith(("trained ", "funnel check"))]
    assert "campaign tiny: 40 trained" in quiet
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")  # progress writes nothing there
    a.pop("hall_of_fame.json"), b.pop("hall_of_fame.json")  # holds the wall seconds
    assert a == b


def test_plain_lines_come_at_each_tenth_of_the_budget():
    out = io.StringIO()
    clock = iter(range(100)).__next__
    progress = Progress(100, ["s"], out=out, live=False, clock=lambda: float(clock()))
    for n in range(1, 101):
        progress(_state(n), replayed=0)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == [f"trained {n}/100" for n in range(10, 101, 10)]


def test_the_live_line_is_redrawn_in_place_and_a_check_printed_above_it():
    out = io.StringIO()
    t = [0.0]
    progress = Progress(10, ["s", "l"], out=out, live=True, clock=lambda: t[0])
    for n in range(1, 11):
        t[0] = n  # one candidate a second
        progress(_state(n, best=0.125), replayed=0)
    progress.check(CheckPoint(10, {"s": 0.125, "l": None}, pick=3, pick_validation=-0.5, best_validation=0.25))
    progress.close()
    text = out.getvalue()
    redraws = [part for part in text.split("\r") if part.startswith("trained ")]
    assert redraws and redraws[-1].startswith("trained 10/10  best +0.1250  1.0 candidates/s  00:00 left")
    assert "funnel check at 10 trained: best s +0.1250, l -; validation: pick id 3 -0.5000, best +0.2500\n" in text


def test_the_time_left_is_the_budget_left_at_this_process_s_rate():
    t = [10.0]
    progress = Progress(100, ["s"], out=io.StringIO(), live=False, clock=lambda: t[0])
    t[0] = 30.0  # 50 trained, 10 of them replayed: 40 in 20 s, 2 a second; 50 left: 25 s
    assert "2.0 candidates/s  00:25 left  (10 replayed)" in progress.status(_state(50), replayed=10)


def test_while_the_log_is_replayed_the_rate_is_zero_not_negative():
    t = [10.0]
    progress = Progress(100, ["s"], out=io.StringIO(), live=False, clock=lambda: t[0])
    t[0] = 11.0  # 20 of the log's 90 records replayed so far: nothing trained yet
    assert progress.status(_state(20), replayed=90).startswith("best +0.2500  0.0 candidates/s  ? left  (90 replayed)")


def test_a_check_without_validation_says_so_in_fewer_words():
    assert check_line(CheckPoint(5, {"s": -0.25}), ["s"]) == "funnel check at 5 trained: best s -0.2500"

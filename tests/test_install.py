"""A non-editable install works outside the checkout: the wheel carries the search spaces and task data."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "symopt", "proxy_tasks", "search_spaces")


def test_wheel_installs_and_searches_outside_the_checkout(tmp_path: pathlib.Path):
    src = tmp_path / "src"  # the files a source distribution holds; pip builds in-tree and would litter the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("symopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"search_spaces/quick.toml", "search_spaces/hero.toml", "proxy_tasks/data/digits.npz",
            "proxy_tasks/data/text.txt"} <= names

    site = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import symopt, search_spaces, proxy_tasks as p; "
                            "print(symopt.__file__, search_spaces.__file__, p.__file__)"],
                           env=env, cwd=elsewhere, capture_output=True, text=True, check=True)
    assert all(path.startswith(str(site)) for path in where.stdout.split())  # the installed copy, not the checkout

    # The main job's configuration, held out on one task: its sixteen validation tasks would spend minutes
    # compiling what the other tests compile already (the wheel's quick.toml is checked above).
    config = re.sub(r"^validation = \[.*?\]", 'validation = ["cnn_digits"]',
                    (ROOT / "search_spaces" / "quick.toml").read_text(), count=1, flags=re.S | re.M)
    assert 'validation = ["cnn_digits"]' in config
    (elsewhere / "quick_one.toml").write_text(config)
    run = subprocess.run([str(site / "bin" / "symopt"), "search", "quick_one.toml", "--budget", "20", "--serial",
                          "--run-dir", str(elsewhere / "run")], env=env, cwd=elsewhere, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (elsewhere / "run" / "hall_of_fame.json").is_file()
    assert len((elsewhere / "run" / "evaluations.jsonl").read_text().splitlines()) >= 20

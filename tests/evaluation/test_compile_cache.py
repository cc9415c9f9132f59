"""The persistent compilation cache: where it lives, that a second process loads what the first compiled."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from symopt.evaluation import compile_cache

# One training in a fresh process: what compiled, what loaded from the cache, and the losses.
SCRIPT = """
import json
from symopt.evaluation import compile_cache, evaluate
from symopt.evaluation.compiles import count_compiles
from symopt.programs import baselines
with count_compiles() as c:
    [r] = evaluate([baselines.get("lion")], "quadratic_illcond", steps=40)
print(json.dumps({"run_compiled": c.names.count("jit(run)"), "loaded": c.loaded,
                  "losses": [float(x) for x in r.runs[0].losses], "dir": str(compile_cache.enable())}))
"""


def _fresh_process(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(path: pathlib.Path) -> list[str]:
    return sorted(p.name for p in path.rglob("*-cache"))


def test_the_cache_lives_where_the_user_says(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_dir() == tmp_path / "xdg" / "symopt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.cache_dir() == tmp_path / "home" / ".cache" / "symopt"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "mine"))
    assert compile_cache.cache_dir() == tmp_path / "mine"
    for off in ("off", "0", "", " OFF "):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.cache_dir() is None


def test_a_second_process_loads_the_executables_the_first_compiled(tmp_path):
    env = {compile_cache.ENV: str(tmp_path / "cache")}
    first = _fresh_process(env)
    assert first["run_compiled"] == 1 and first["loaded"] == 0
    assert pathlib.Path(first["dir"]).parent == tmp_path / "cache"  # jax-<jaxlib version>/ inside
    assert any(name.startswith("jit_run-") for name in _entries(tmp_path / "cache"))
    second = _fresh_process(env)
    assert second["run_compiled"] == 0 and second["loaded"] >= 1  # the run executable (and init, eval) loaded
    assert second["losses"] == first["losses"]  # the same executable: the same training, bit for bit


def test_off_writes_nothing_and_a_users_own_jax_cache_is_kept(tmp_path):
    off = _fresh_process({compile_cache.ENV: "off", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert off["dir"] == "None" and off["run_compiled"] == 1 and not (tmp_path / "xdg").exists()
    own = _fresh_process({"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"),
                          compile_cache.ENV: str(tmp_path / "symopt")})
    assert own["dir"] == str(tmp_path / "jax") and _entries(tmp_path / "jax") and not (tmp_path / "symopt").exists()


def test_an_unwritable_cache_directory_says_how_to_fix_it(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**os.environ, compile_cache.ENV: str(tmp_path / "file" / "cache")})
    assert out.returncode != 0
    assert f"cannot create symopt's compilation cache {tmp_path / 'file' / 'cache'}" in out.stderr
    assert f"set {compile_cache.ENV} to a writable directory, or {compile_cache.ENV}=off" in out.stderr


# Builds "a" and "b" in turn, logging each as it starts; the parent holds the claim of "a".
IN_TURN = """
import pathlib, sys
from symopt.evaluation import compile_cache
log = pathlib.Path(sys.argv[1])
compile_cache.in_turn([(k, lambda k=k: log.write_text(log.read_text() + k)) for k in ("a", "b")])
"""


def test_a_process_compiles_first_what_no_other_is_compiling(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "cache"))
    log = tmp_path / "log"
    log.write_text("")
    held = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom symopt.evaluation import compile_cache\n"
                             "lock = compile_cache.claim('a'); lock.acquire(); print('held', flush=True)\n"
                             "sys.stdin.readline()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"  # another process is compiling "a"
        builder = subprocess.Popen([sys.executable, "-c", IN_TURN, str(log)])
        deadline = time.monotonic() + 120
        while log.read_text() != "b" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert log.read_text() == "b"  # "b" first, and "a" waits for the other process
        held.stdin.write("done\n")
        held.stdin.flush()
        assert builder.wait(timeout=120) == 0
        assert log.read_text() == "ba"  # then "a" (from the cache, were it an executable)
    finally:
        held.kill()

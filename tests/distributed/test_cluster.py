"""What symopt lets into its Ray cluster: the auth policy, the token file, the core-lock directory.

Real files and real processes. That a real Ray instance refuses a client without the
token is in tests/distributed/test_pool.py (it needs the session's instance).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import stat
import subprocess
import sys

import pytest

from symopt.distributed import cluster, cores
from symopt.distributed.cluster import ClusterAuthError, auth_mode

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOY_TOML = """name = "open"
[space]
functions = ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate"]
max_length = 8
[campaign]
population = 4
tournament = 2
budget = 6
hall_of_fame = 2
[[campaign.stages]]
tasks = ["toy_quadratic"]
"""


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh HOME with no token, and no Ray auth variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


# -- the policy -----------------------------------------------------------------------------------


def test_symopt_starts_ray_with_token_auth_or_not_at_all(home):
    assert auth_mode(None, False, {}) == "token"  # nothing set: token auth (the file is created on start)
    assert auth_mode(None, False, {"RAY_AUTH_MODE": "token"}) == "token"
    for mode in ("disabled", "DISABLED", "", "off"):
        with pytest.raises(ClusterAuthError, match="without token authentication.*unset RAY_AUTH_MODE.*--insecure"):
            auth_mode(None, False, {"RAY_AUTH_MODE": mode})
        assert auth_mode(None, True, {"RAY_AUTH_MODE": mode}) == "disabled"
    assert auth_mode(None, True, {}) == "token"  # --insecure allows no auth; it does not turn auth off


def test_joining_needs_a_token(home):
    with pytest.raises(ClusterAuthError, match=r"no token to join 10\.0\.0\.1:6379: .*auth_token does not exist"):
        auth_mode("10.0.0.1:6379", False, {})
    assert auth_mode("10.0.0.1:6379", True, {}) == "disabled"  # --insecure: a cluster without auth
    assert auth_mode("10.0.0.1:6379", False, {"RAY_AUTH_TOKEN": "abc"}) == "token"
    with pytest.raises(ClusterAuthError, match="missing.tok does not exist"):
        auth_mode("10.0.0.1:6379", False, {"RAY_AUTH_TOKEN_PATH": str(home / "missing.tok")})
    cluster.create_token_file(home / ".ray" / "auth_token")
    assert auth_mode("10.0.0.1:6379", False, {}) == "token"
    with pytest.raises(ClusterAuthError, match="RAY_AUTH_MODE=disabled would join 10.0.0.1:6379"):
        auth_mode("10.0.0.1:6379", False, {"RAY_AUTH_MODE": "disabled"})


# -- the token file -------------------------------------------------------------------------------


def test_the_token_file_symopt_creates_is_private(home):
    old = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        cluster.prepare_token(None, {})
    finally:
        os.umask(old)
    path = home / ".ray" / "auth_token"
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert os.listdir(path.parent) == ["auth_token"]  # no temporary file left behind
    assert cluster.create_token_file(path) is False  # an existing token is never replaced
    assert path.read_text() == token
    assert cluster.token_file_problem(path) is None


def test_an_open_token_file_gets_a_warning(home):
    path = home / ".ray" / "auth_token"
    cluster.create_token_file(path)
    path.chmod(0o644)
    with pytest.warns(RuntimeWarning, match=r"auth_token is open to other users \(mode 0644\).*chmod 600"):
        cluster.prepare_token(None, {})
    path.chmod(0o600)
    other = home / "elsewhere.tok"
    other.write_text("x" * 64)
    other.chmod(0o640)
    with pytest.warns(RuntimeWarning, match="elsewhere.tok is open to other users"):  # the file Ray will read
        cluster.prepare_token("10.0.0.1:6379", {"RAY_AUTH_TOKEN_PATH": str(other)})


def test_a_named_token_file_that_is_missing_is_an_error(home):
    with pytest.raises(ClusterAuthError, match="RAY_AUTH_TOKEN_PATH=.*nope does not exist"):
        cluster.prepare_token(None, {"RAY_AUTH_TOKEN_PATH": str(home / "nope")})
    assert not (home / "nope").exists() and not (home / ".ray").exists()


# -- the command line -----------------------------------------------------------------------------


def _args(tmp_path, **kw):
    config = tmp_path / "open.toml"
    config.write_text(TOY_TOML)
    base = dict(config=str(config), budget=None, seed=0, run_dir=str(tmp_path / "run"), resume=False, workers=1,
                address=None, serial=False, insecure=False)
    return argparse.Namespace(**{**base, **kw})


def test_search_refuses_ray_without_auth(home, tmp_path, monkeypatch, capsys):
    from symopt.cli.search import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert main(_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symopt search: RAY_AUTH_MODE=disabled would start a Ray instance")
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert main(_args(tmp_path, address="10.0.0.1:6379")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no token to join 10.0.0.1:6379" in err
    assert main(_args(tmp_path, serial=True, workers=None, insecure=True)) == 1
    assert "leave out --workers, --address and --insecure" in capsys.readouterr().err


@pytest.mark.slow
def test_search_insecure_runs_and_says_so(home, tmp_path):
    """``--insecure`` with RAY_AUTH_MODE=disabled: a real local Ray without auth, a loud line, the campaign runs."""
    config = tmp_path / "open.toml"
    config.write_text(TOY_TOML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="disabled", HOME=str(home), PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "symopt.cli", "search", str(config), "--workers", "1", "--insecure",
                          "--run-dir", str(tmp_path / "run")], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "symopt search: WARNING: --insecure: Ray at " in out.stderr
    assert "runs WITHOUT token authentication" in out.stderr
    assert "campaign open: 6 trained" in out.stdout
    assert not (home / ".ray").exists()  # no token was made for an instance that does not check one


# -- the core-lock directory ----------------------------------------------------------------------


def test_the_core_lock_directory_is_private(tmp_path):
    path = tmp_path / "cores"
    old = os.umask(0)
    try:
        os.close(cores.open_lock_dir(path))
    finally:
        os.umask(old)
    assert _mode(path) == 0o700
    path.chmod(0o777)  # ours but open (an older symopt made it so): tightened
    os.close(cores.open_lock_dir(path))
    assert _mode(path) == 0o700


def test_a_core_lock_directory_of_someone_else_is_refused(tmp_path):
    if os.getuid() == 0:
        other = tmp_path / "theirs"
        other.mkdir(mode=0o777)
        os.chown(other, 65534, 65534)
        uid = 65534
    else:  # a directory that root owns
        other, uid = pathlib.Path("/"), 0
    with pytest.raises(cores.LockDirError, match=f"belongs to uid {uid}, not to you .*refusing it"):
        cores.open_lock_dir(other)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(cores.LockDirError, match="is a symbolic link"):
        cores.open_lock_dir(link)


@pytest.mark.slow
def test_lock_files_are_never_opened_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "cores"
    fd = cores.open_lock_dir(path)
    try:
        (path / "cpu3.lock").symlink_to(victim)  # planted
        with pytest.raises(OSError):
            cores.try_lock(fd, 3)
        assert victim.read_text() == "precious"
        held = cores.try_lock(fd, 4)
        assert held is not None and _mode(path / "cpu4.lock") == 0o600
        again = subprocess.run([sys.executable, "-c", "import os, sys; from symopt.distributed import cores; "
                                f"fd = os.open({str(path)!r}, os.O_RDONLY); print(cores.try_lock(fd, 4))"],
                               capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert again.stdout.strip() == "None", again.stderr  # another process cannot take a held core
        os.close(held)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_pin_to_core_falls_back_and_says_why(tmp_path):
    """With an untrusted lock directory a process still pins (to its slot's core) and reports the refusal."""
    (tmp_path / "link").symlink_to(tmp_path)
    code = ("import os, pathlib, sys; from symopt.distributed import cores; "
            f"cores.lock_dir_path = lambda: pathlib.Path({str(tmp_path / 'link')!r}); "
            "core, why = cores.pin_to_core(0); print(core, sorted(os.sched_getaffinity(0))); print(why)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    first, why = out.stdout.strip().splitlines()
    core, affinity = first.split(" ", 1)
    assert affinity == f"[{core}]" and int(core) == min(os.sched_getaffinity(0))
    assert "is a symbolic link" in why

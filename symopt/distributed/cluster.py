"""Starting or joining Ray for symopt: with token authentication, or not at all.

    from symopt.distributed import connect
    connect()                          # a local instance; or join address= / RAY_ADDRESS

**What the cluster accepts.** A Ray instance runs whatever code its clients send,
as the user who started it. Ray's token authentication (first in Ray 2.52, the
lowest version pyproject.toml allows) makes every
client present a shared secret; without it any local process (and anything that
can reach its ports) can use the cluster. So :func:`connect` runs Ray with
``RAY_AUTH_MODE=token`` and refuses (:class:`ClusterAuthError`, one line with the
fix) to start or join one without it: when ``RAY_AUTH_MODE`` is set to anything
else (``disabled``), or when it joins an address with no token to present.
``insecure=True`` (``symopt search --insecure``) lifts the refusal; the command
line then says loudly that the cluster is open. A client cannot see whether a
remote cluster checks the token it sends: start remote clusters with
``RAY_AUTH_MODE=token``.

**The token.** Ray reads it from ``RAY_AUTH_TOKEN``, else the file at
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. Ray itself would create that
file readable by everyone (0644, umask permitting); before a local start without
a token :func:`connect` creates it instead, 0600 in a ``~/.ray`` made 0700, written
in full before it appears (a temporary file hard-linked into place, so a
concurrent start reads either nothing or the whole token). An existing token file
that other users can read or write gets a warning (:func:`token_file_problem`).

**Ray details this relies on** (Ray 2.60). ``ray.init()`` of a new local cluster
enables token auth when no mode is set, and warns; saying ``RAY_AUTH_MODE=token``
explicitly silences the warning. Joining an *explicit* address does not turn auth
on: a client without the token is refused by the cluster after about 20 s with a
bare ``ConnectionError`` (tests/distributed/test_pool.py checks that a real instance
refuses one). An env change after ``import ray`` needs Ray's cached config
refreshed (``ray._raylet.Config.initialize("")``, as Ray itself does).
An actor's ``py_modules`` must be URIs: :func:`task_runtime_env` uploads with the
function ``ray.init`` uses (``ray._private.runtime_env.py_modules.upload_py_modules_if_needed``).
``ray.cluster_utils.Cluster`` never turns auth on by itself: set
``RAY_AUTH_MODE=token`` and a token before creating it, as the tests do.

**Shipping the code.** Joining a cluster ships this checkout's ``symopt`` and
``proxy_tasks`` as ``py_modules`` (:func:`ship_runtime_env`). Ray also puts the
driver's directory on the workers' path, so on the driver's own machine a checkout
there is imported first; other machines use the shipped copy. A local instance
ships nothing (its workers import what the driver imports). Tasks of the user's own,
named by import path, travel with the evaluator actors instead (:func:`task_runtime_env`),
local instance or not: their modules may be anywhere on the driver's path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import secrets
import stat
import sys
import tempfile
import warnings
from typing import Any, Iterable, Mapping

import proxy_tasks
import symopt
from proxy_tasks.imported import is_import_path, ship_path

MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
DEFAULT_OBJECT_STORE = 256 * 1024 * 1024
"""Object store of a local instance: results are a few KB, so 256 MiB instead of 30% of RAM."""
INSECURE_HELP = "allow Ray without token authentication (RAY_AUTH_MODE=disabled); said loudly on stderr"
"""The help of the ``--insecure`` flag of the commands that start or join Ray."""
SHIP_EXCLUDES = ["__pycache__", "*.pyc", ".git", ".pytest_cache", ".hypothesis", "runs", "*.egg-info"]
"""Left out of the shipped packages. ``runs`` matches a directory of that name at any depth (campaign output
written inside a package): no package of symopt may be named ``runs``."""


class ClusterAuthError(RuntimeError):
    """symopt would start or join Ray without token authentication (the message says how to fix it)."""


# -- the token ------------------------------------------------------------------------------------


def default_token_path() -> pathlib.Path:
    """``~/.ray/auth_token``, where Ray looks when neither token variable is set."""
    return pathlib.Path.home() / ".ray" / "auth_token"


def token_file(env: Mapping[str, str] = os.environ) -> pathlib.Path | None:
    """The file Ray would read the token from; None when ``RAY_AUTH_TOKEN`` gives it directly."""
    if env.get(TOKEN_ENV):
        return None
    if env.get(TOKEN_PATH_ENV):
        return pathlib.Path(env[TOKEN_PATH_ENV]).expanduser()
    return default_token_path()


def token_available(env: Mapping[str, str] = os.environ) -> bool:
    """Whether Ray would find a token (in the environment or in its file)."""
    path = token_file(env)
    return path is None or path.is_file()


def create_token_file(path: pathlib.Path) -> bool:
    """Write a new random token to ``path``, mode 0600, unless a file is there; True if this call made it."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600 whatever the umask
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))  # 256 bits, as Ray's own generator
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # appears complete, and never replaces a token someone else wrote
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def token_file_problem(path: pathlib.Path) -> str | None:
    """What is wrong with an existing token file's permissions (None if only its owner can use it)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return (f"{path} is open to other users (mode {mode:04o}): whoever reads it can run code on your Ray "
                f"cluster as you; run: chmod 600 {path}")
    return None


# -- the decision ---------------------------------------------------------------------------------


def auth_mode(joining: str | None, insecure: bool, env: Mapping[str, str] = os.environ) -> str:
    """``"token"`` or ``"disabled"``: how symopt may start (``joining=None``) or join an address.

    Raises :class:`ClusterAuthError` where that would be without token authentication
    and ``insecure`` is not set.
    """
    mode = env.get(MODE_ENV)
    if mode is not None and mode.strip().lower() != "token":
        if insecure:
            return "disabled"
        what = f"join {joining}" if joining else "start a Ray instance"
        raise ClusterAuthError(f"{MODE_ENV}={mode} would {what} without token authentication, which any local "
                               f"process can use to run code as you; unset {MODE_ENV} (symopt then uses a token), "
                               f"or pass --insecure")
    if joining and not token_available(env):
        if insecure and mode is None:
            return "disabled"
        where = token_file(env)
        raise ClusterAuthError(f"no token to join {joining}: {where} does not exist; copy the cluster's token there "
                               f"(ray get-auth-token on the head node), or set {TOKEN_ENV}"
                               + (", or pass --insecure for a cluster without authentication" if mode is None else ""))
    return "token"


def prepare_token(joining: str | None, env: Mapping[str, str] = os.environ) -> None:
    """For token auth: create the default token file for a local start if there is none; warn if it is open."""
    path = token_file(env)
    if path is None:
        return
    if not joining and not path.exists():
        if TOKEN_PATH_ENV in env:
            raise ClusterAuthError(f"{TOKEN_PATH_ENV}={env[TOKEN_PATH_ENV]} does not exist: write the token there, "
                                   f"or unset {TOKEN_PATH_ENV} (symopt then creates {default_token_path()})")
        create_token_file(path)
        return
    problem = token_file_problem(path)
    if problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=3)


def open_cluster_warning(info: Mapping) -> str | None:
    """The line a command prints, loudly, when it runs on Ray without token authentication (None when it has it)."""
    if info.get("auth_mode") == "token":
        return None
    return (f"WARNING: --insecure: Ray at {info.get('address')} runs WITHOUT token authentication: any process that "
            f"can reach it can run code on it as you")


def _set_auth_mode(mode: str) -> None:
    os.environ[MODE_ENV] = mode
    try:  # Ray caches its config (auth mode included) at import; refresh it as ray.init does
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # pragma: no cover - a Ray without this private hook reads the env anyway
        pass


# -- connecting -----------------------------------------------------------------------------------


def _jax_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # pragma: no cover - private API moved
        return False


def ship_runtime_env(extra: Mapping | None = None) -> dict:
    """A runtime_env that ships this checkout's ``symopt`` and ``proxy_tasks`` packages to the workers.

    ``py_modules`` (not ``working_dir``) so that it works whether symopt runs from a
    checkout or an install; the proxy tasks' data files live inside their package
    and travel with it. ``extra`` is merged in (its ``env_vars`` and ``py_modules`` added).
    """
    env: dict[str, Any] = {
        "py_modules": [str(pathlib.Path(symopt.__file__).parent), str(pathlib.Path(proxy_tasks.__file__).parent)],
        "excludes": list(SHIP_EXCLUDES),
    }
    for key, value in dict(extra or {}).items():
        if key in ("py_modules", "excludes"):
            env[key] = env[key] + [v for v in value if v not in env[key]]
        elif key == "env_vars":
            env["env_vars"] = {**env.get("env_vars", {}), **value}
        else:
            env[key] = value
    return env


def task_runtime_env(tasks: Iterable[str]) -> dict:
    """A runtime_env for the evaluator actors that ships the user's modules of the tasks named by import path
    (``"package.module:attr"``): the top-level package or module of each, uploaded to the connected cluster
    and added to the job's own ``py_modules`` (an actor's list replaces the job's). Empty when none."""
    import ray
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed

    paths = sorted({ship_path(t) for t in tasks if is_import_path(t)})
    if not paths:
        return {}
    # an actor's runtime_env takes URIs only: upload as ray.init does for its own py_modules (content-addressed)
    with tempfile.TemporaryDirectory() as scratch:
        uploaded = upload_py_modules_if_needed({"py_modules": paths, "excludes": list(SHIP_EXCLUDES)},
                                               include_gitignore=True, scratch_dir=scratch)["py_modules"]
    job = ray.get_runtime_context().runtime_env.get("py_modules") or []
    return {"py_modules": [*job, *(u for u in uploaded if u not in job)]}


def connect(address: str | None = None, *, insecure: bool = False, num_cpus: int | None = None,
            ship: bool | None = None, runtime_env: Mapping | None = None, namespace: str | None = None,
            quiet: bool = True, object_store_memory: int | None = DEFAULT_OBJECT_STORE, **init_kwargs) -> dict:
    """Start or join Ray for an evaluation pool; returns a small description of the cluster.

    With no ``address`` and no ``RAY_ADDRESS``, starts a local instance with
    ``num_cpus`` CPUs (default: the cores this process may run on), listening on
    127.0.0.1 only (:func:`_loopback`; unless ``_node_ip_address`` is given), no dashboard,
    a small object store and (``quiet``) warnings only, worker output not echoed.
    With an address, joins that cluster; ``ship`` (default: True when joining)
    sends this checkout's symopt and proxy_tasks along (:func:`ship_runtime_env`).
    Token authentication or :class:`ClusterAuthError`, unless ``insecure`` (see the
    module docstring). A no-op returning the same description when Ray is already
    initialised. Call it before any JAX computation in the driver: it warns
    otherwise (a local start forks this process through ``subprocess.Popen(preexec_fn=...)``;
    once JAX's threads run, JAX warns that a fork may deadlock).
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address == "local":  # Ray's spelling of "start a new local instance"
        address = None
    mode = auth_mode(address, insecure)
    if ray.is_initialized():
        return describe()
    if _jax_started():
        warnings.warn("JAX computed in this process before Ray started; start Ray first (symopt.distributed.connect): "
                      "starting Ray forks this process", RuntimeWarning, stacklevel=2)
    if mode == "token":
        prepare_token(address)
        _set_auth_mode("token")  # explicit: Ray's default for a new local cluster (no warning), and sent to an address
    joining = address is not None
    ship = joining if ship is None else ship
    env = ship_runtime_env(runtime_env) if ship else (dict(runtime_env) if runtime_env else None)
    kwargs: dict[str, Any] = dict(namespace=namespace, runtime_env=env, log_to_driver=not quiet,
                                  logging_level=logging.WARNING if quiet else logging.INFO)
    if not joining:
        kwargs.update(num_cpus=num_cpus or len(os.sched_getaffinity(0)), include_dashboard=False,
                      object_store_memory=object_store_memory)
    kwargs.update(init_kwargs)
    # "local": a new instance of our own even when another one runs on this machine (plain
    # ray.init() would join the latest of them, and refuse num_cpus)
    with _loopback(not joining and "_node_ip_address" not in init_kwargs):
        ray.init(address=address if joining else "local", **kwargs)
    return describe()


@contextlib.contextmanager
def _loopback(local: bool):
    """A local start on 127.0.0.1 alone, in Ray's own single-machine mode (its default on macOS and Windows;
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` elsewhere): the node's address is then the loopback one, and the
    GCS, the raylet and every worker's gRPC server listen on it alone. Otherwise Ray resolves even
    ``_node_ip_address="127.0.0.1"`` to the machine's outward address, and they all listen on every interface.
    Ray reads the switch when it picks the node's address, in ``ray.init``; a cluster start is left alone."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = saved and not local
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def describe() -> dict:
    """The connected cluster: address, CPUs (total and free), alive nodes, auth mode."""
    import ray

    ctx = ray.get_runtime_context()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"address": ctx.gcs_address, "namespace": ctx.namespace,
            "cpus": ray.cluster_resources().get("CPU", 0.0), "free_cpus": ray.available_resources().get("CPU", 0.0),
            "nodes": len(nodes), "auth_mode": _driver_auth_mode()}


def _driver_auth_mode() -> str:
    """The auth mode this driver's Ray runs with (its cached config, not the environment, which may have changed)."""
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        return "token" if get_authentication_mode() == AuthenticationMode.TOKEN else "disabled"
    except ImportError:  # pragma: no cover - private API moved
        return "token" if os.environ.get(MODE_ENV, "").strip().lower() == "token" else "disabled"


def disconnect() -> None:
    """``ray.shutdown()`` (stops a local instance that :func:`connect` started)."""
    import ray

    ray.shutdown()

"""Shared fixtures."""

from __future__ import annotations

import inspect

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (token auth on), started by the first test that asks.

    Yields :func:`symopt.distributed.describe`'s dict; shut down at the end of the session.
    """
    import warnings

    from symopt.distributed import connect, disconnect

    # Other test files may have run JAX in this process already; then connect() warns, and so
    # does JAX when Ray's process start-up forks (subprocess.Popen with a preexec_fn, exec'd at
    # once). A campaign starts Ray first; a test session cannot, without starting it eagerly.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="JAX computed in this process before Ray started")
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        info = connect(num_cpus=2)
    yield info
    disconnect()


def _starts_a_process(item) -> bool:
    try:
        source = inspect.getsource(item.function)
    except (AttributeError, OSError, TypeError):
        return False
    return "subprocess" in source or "sys.executable" in source


def pytest_collection_modifyitems(items):
    """Mark ``slow`` every test that starts Ray or another process: the fast tier (``-m "not slow"``) runs none.

    Under pytest-xdist (``-n 2 --dist loadgroup``, pyproject.toml) they are also one group, run in turn by one
    worker: one Ray instance per session, and never two clusters or process-killing tests at once.
    """
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()) or _starts_a_process(item):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("processes"))

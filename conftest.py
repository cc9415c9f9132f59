"""Collection settings for the whole checkout (pytest's testpaths: tests, symopt and proxy_tasks, doctests included)."""

import importlib.util


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


# The torch exports import torch, an optional extra (pip install 'symopt[torch]'): without it their modules are
# not collected for doctests, and their tests skip themselves (tests/export/test_torch_optimizer.py, tests/export/test_torch_equivalence.py).
collect_ignore = [] if _installed("torch") else ["symopt/export/torch_array.py", "symopt/export/torch_optimizer.py"]

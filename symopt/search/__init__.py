"""Search: regularised evolution over update-rule programs, with caches, funnel selection and simplification.

:func:`search` (also ``symopt.search(...)``: the package is callable) runs a whole
campaign from a configuration (``search_spaces/*.toml``); the parts are usable alone:
:mod:`~symopt.search.space` (configuration),
:mod:`~symopt.search.mutation`, :mod:`~symopt.search.dedup` (hash, fingerprint,
cache), :mod:`~symopt.search.evolution` (the algorithm, pure: propose and accept),
:mod:`~symopt.search.steady` (the steady-state loop over any evaluator),
:mod:`~symopt.search.funnel` and :mod:`~symopt.search.run_dir` (what a campaign
writes, and reads back to resume).
"""

import sys
import types

from symopt.search.campaign import Campaign, HallOfFameEntry, search
from symopt.search.space import Config, SearchSpace, load

__all__ = ["Campaign", "Config", "HallOfFameEntry", "SearchSpace", "load", "search"]


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`search`: ``symopt.search(config)`` runs a campaign while
    ``symopt.search.space`` stays the module (a function of that name would hide the package)."""

    def __call__(self, *args, **kwargs) -> Campaign:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

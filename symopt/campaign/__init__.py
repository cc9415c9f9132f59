"""A campaign: the search stage, the funnel and validation, as one call.

:func:`search` (``symopt.search(config)``) runs a whole campaign from a configuration
(:mod:`symopt.config`) on a backend, keeping its run directory (:mod:`symopt.storage`);
:mod:`~symopt.campaign.funnel` promotes the leaders through the later stages.
"""

from symopt.campaign.campaign import Campaign, HallOfFameEntry, search

__all__ = ["Campaign", "HallOfFameEntry", "search"]

"""A campaign's configuration: search spaces, campaigns and their stages, read and checked.

* :mod:`~symopt.config.space`: ``Config``, ``SearchSpace``, ``CampaignConfig``, ``Stage``; ``load`` a TOML
  file, a name in ``search_spaces/`` or a dict, every key checked against its range;
* :mod:`~symopt.config.start`: the start program of a campaign, fitted to the space's arguments.
"""

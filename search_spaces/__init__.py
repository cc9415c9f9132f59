"""The search spaces shipped with symopt (``quick.toml``, ``hero.toml``): package data, so an installed copy
finds them."""

"""``symopt search CONFIG``: run a search campaign and print its hall of fame."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def main_search(args: argparse.Namespace) -> int:
    """Run the campaign of ``args.config``; print the summary; write the hall of fame next to the log."""
    from symopt.search.campaign import search
    from symopt.search.space import load

    try:
        config = load(args.config)
    except ValueError as e:
        print(f"symopt search: {e}", file=sys.stderr)
        return 1
    run_dir = pathlib.Path(getattr(args, "run_dir", None) or pathlib.Path("runs", config.name))
    campaign = search(config, budget=getattr(args, "budget", None), seed=getattr(args, "seed", None),
                      run_dir=run_dir)
    (run_dir / "hall_of_fame.json").write_text(json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds}, indent=2))
    print(campaign.summary())
    print(f"\nwrote {run_dir / 'evaluations.jsonl'} and {run_dir / 'hall_of_fame.json'}")
    return 0

"""Part h of the study: the headroom above tuned AdamW, the panel of rules it trains and its table by task."""

from __future__ import annotations

from symopt.programs import baselines, variants
from symopt.programs.program import Const
from symopt.tools.compare import scale_lr

HEADROOM_DECAYS = (0.9, 0.7, 0.5, 0.35, 0.2)
"""Part h's values of each baseline's momentum decay (its constant ``b1`` or ``beta``)."""
HEADROOM_LR = (1.0, 0.1)
"""Part h's learning-rate scales: a sign-based rule wants a smaller rate (the Lion paper: 3 to 10 times)."""
HEADROOM_LR_BY_RULE = {"muon": (1.0, 3.0, 10.0, 30.0), "adafactor": (1.0, 3.0, 10.0, 30.0)}
"""Rules whose step is smaller than Adam's at the same rate and so want larger ones: an orthogonalised matrix
has entries of about 1 / sqrt(its width), Adafactor's step is the rate times the weights' RMS."""


def headroom_panel(decays=HEADROOM_DECAYS, scales=HEADROOM_LR, rules=None) -> list[dict]:
    """Part h's panel: every baseline program and every Adam variant at each momentum decay (when it has one),
    the baselines at each lr scale (their own, HEADROOM_LR_BY_RULE, where they want larger rates), the variants
    (none sign-based) at x1. ``rules``: only these (and AdamW, the reference)."""
    keep = None if rules is None else set(rules) | {"adamw"}
    rules = [("baseline", name, baselines.get(name), HEADROOM_LR_BY_RULE.get(name, scales))
             for name in baselines.names() if baselines.is_program(name)]
    rules += [("variant", name, variants.get(name), (1.0,)) for name in variants.names()]
    rules = [r for r in rules if keep is None or r[1] in keep]
    items = []
    for family, name, base, rule_scales in rules:
        decay = next((s.target for s in base.body if s.target in ("b1", "beta") and isinstance(s.value, Const)), None)
        for d in decays if decay else (None,):
            program = base.with_constant(decay, d) if decay else base
            items += [{"baseline": name, "family": family, "decay": d, "lr_scale": x, "program": scale_lr(program, x)}
                      for x in rule_scales]
    return items


def headroom_per_task(rows: list[dict]) -> dict:
    """Per validation task: AdamW's best score over its rows, and the best row of any other rule."""
    out = {}
    for task in rows[0]["tasks"] if rows else ():
        adamw = max((r for r in rows if r["baseline"] == "adamw"), key=lambda r: r["tasks"][task])
        other = max((r for r in rows if r["baseline"] != "adamw"), key=lambda r: r["tasks"][task])
        out[task] = {"adamw": adamw["tasks"][task], "adamw_decay": adamw["decay"], "other": other["tasks"][task],
                     "other_rule": other["baseline"], "other_family": other["family"], "other_decay": other["decay"],
                     "other_lr_scale": other["lr_scale"]}
    return out

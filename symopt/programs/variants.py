"""Published variants of Adam that are not baselines, as programs: what study part h measures beyond them.

The baselines (:mod:`symopt.programs.baselines`) are the rules the search starts
from and is compared with; these are the structures the field has proposed
since, each a change to Adam that tuning Adam's constants cannot make. Study
part h trains them at every momentum decay (the constant ``b1``) on the
validation tasks to ask whether the symbolic search had anything to find above
tuned AdamW. Those with an optax twin match it step for step
(tests/programs/test_variants.py), written in the baselines' conventions (``divide`` is
optax's plain division, moments in optax's order of operations); the others
follow their paper and say where they cannot.

    amsgrad     optax.amsgrad: the largest bias-corrected second moment so far
    adamax      optax.adamax: an infinity-norm second moment
    adabelief   optax.adabelief: the second moment of g - m (the "belief")
    adopt       optax.contrib.adopt: g normalised by the previous second moment, then averaged, clipped at t^1/4
    ademamix    optax.contrib.ademamix: a slow second momentum (b3 0.9999) added with weight 5
    laprop      LaProp (Ziyin et al. 2020): g normalised by the second moment, then averaged; no optax twin
    cautious    Cautious Adam (Liang et al. 2024): components whose sign disagrees with g's are zeroed; no optax twin
"""

from __future__ import annotations

import functools

from symopt.programs.hints import did_you_mean
from symopt.programs.parser import parse
from symopt.programs.program import Program

AMSGRAD = """
def amsgrad(g, mu, nu, nu_max, t):
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_max = max(nu_max, divide(nu, 1.0 - power(b2, t)))
    update = divide(mu_hat, sqrt(nu_max + eps_root) + eps)
    return update, mu, nu, nu_max
"""

ADAMAX = """
def adamax(g, mu, nu, t):
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    mu = (1.0 - b1) * g + b1 * mu
    nu = max(b2 * nu, abs(g) + eps)
    update = divide(divide(mu, 1.0 - power(b1, t)), nu)
    return update, mu, nu
"""

ADABELIEF = """
def adabelief(g, mu, nu, t):
    b1 = 0.9
    b2 = 0.999
    eps = 1e-16
    eps_root = 1e-16
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g - mu) + b2 * nu + eps_root
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    update = divide(mu_hat, sqrt(nu_hat) + eps)
    return update, mu, nu
"""

# optax counts steps from 0 (t - 1 here): at the first step b2 is 0 (nu = g^2), b1 is 1 (mu stays 0) and
# the clip at 0^(1/4) = 0, so the first update is 0.
ADOPT = """
def adopt(g, mu, nu, t):
    b1 = 0.9
    b2 = 0.9999
    eps = 1e-06
    after_first = min(t - 1.0, 1.0)
    b1_t = b1 * after_first + (1.0 - after_first)
    clip = power(t - 1.0, 0.25)
    normed = min(max(divide(g, max(sqrt(nu), eps)), -clip), clip)
    nu = (1.0 - b2 * after_first) * square(g) + b2 * after_first * nu
    mu = (1.0 - b1_t) * normed + b1_t * mu
    return mu, mu, nu
"""

ADEMAMIX = """
def ademamix(g, m1, m2, nu, t):
    b1 = 0.9
    b2 = 0.999
    b3 = 0.9999
    alpha = 5.0
    eps = 1e-08
    eps_root = 0.0
    m1 = (1.0 - b1) * g + b1 * m1
    m2 = (1.0 - b3) * g + b3 * m2
    nu = (1.0 - b2) * square(g) + b2 * nu
    m1_hat = divide(m1, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    update = divide(m1_hat + alpha * m2, sqrt(nu_hat + eps_root) + eps)
    return update, m1, m2, nu
"""

LAPROP = """
def laprop(g, mu, nu, t):
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    nu = (1.0 - b2) * square(g) + b2 * nu
    nu_hat = divide(nu, 1.0 - power(b2, t))
    mu = (1.0 - b1) * divide(g, sqrt(nu_hat) + eps) + b1 * mu
    update = divide(mu, 1.0 - power(b1, t))
    return update, mu, nu
"""

# The paper rescales the kept components by the mask's mean over each tensor; the language has no mean, so
# the masked direction is rescaled to the global norm of the unmasked one.
CAUTIOUS = """
def cautious(g, mu, nu, t):
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    u = divide(mu_hat, sqrt(nu_hat) + eps)
    kept = u * max(sign(u * g), 0.0)
    update = kept * divide(global_norm(u), global_norm(kept) + eps)
    return update, mu, nu
"""

_TEXTS: dict[str, str] = {
    "amsgrad": AMSGRAD, "adamax": ADAMAX, "adabelief": ADABELIEF, "adopt": ADOPT,
    "ademamix": ADEMAMIX, "laprop": LAPROP, "cautious": CAUTIOUS,
}


def names() -> list[str]:
    """The variants' names, sorted."""
    return sorted(_TEXTS)


@functools.cache
def get(name: str) -> Program:
    """The variant ``name`` as a program (parsed once)."""
    if name not in _TEXTS:
        raise KeyError(f"no Adam variant {name!r}{did_you_mean(name, _TEXTS)}; the variants are {', '.join(names())}")
    return parse(_TEXTS[name], source=f"<variant {name}>")

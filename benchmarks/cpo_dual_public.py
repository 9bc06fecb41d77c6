"""How often a published CPO dual (as transcribed below) misses the constrained optimum.

    python benchmarks/cpo_dual_public.py

Runs the 400 random problems of ``tests/algos/test_math.py`` (same seed), keeps those where the
closed-form step is in the dual case, and applies the dual formulas as found in OmniSafe's
``omnisafe/algorithms/on_policy/second_order/cpo.py`` (stored version at commit
1f2fd39ab0a364d1c7ad6cc08728cab26725a5f7): ascent-form ``g`` and ``r = g^T H^-1 b``, but the
branch split at ``+r/c`` and ``nu = max(0, lambda c - r) / s`` — the loss-form formulas (where r
has the opposite sign). The transcription is ours (re-expressed, not copied); upstream may have
changed since. Each candidate is compared with SLSQP on the same problem.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "algos"))

from test_math import _random_problem, _slsqp

from saferl.algos.math import cpo_step


def loss_form_dual_with_ascent_r(g, b, hg, hb, c, delta):
    q, r, s = g @ hg, g @ hb, b @ hb
    a_, b_ = q - r**2 / s, 2 * delta - c**2 / s
    lam_a, lam_b = math.sqrt(a_ / b_), math.sqrt(q / (2 * delta))

    def proj(x, lo, hi):
        return max(min(x, hi), lo)

    if c < 0:
        la, lb = proj(lam_a, 0.0, r / c), proj(lam_b, r / c, math.inf)
    else:
        la, lb = proj(lam_a, r / c, math.inf), proj(lam_b, 0.0, r / c)

    def f_a(lam):
        return -0.5 * (a_ / (lam + 1e-8) + b_ * lam) - r * c / (s + 1e-8)

    def f_b(lam):
        return -0.5 * (q / (lam + 1e-8) + 2 * delta * lam)

    lam = la if f_a(la) >= f_b(lb) else lb
    nu = max(lam * c - r, 0.0) / (s + 1e-8)
    return (hg - nu * hb) / (lam + 1e-8)


def main() -> None:
    rng = np.random.default_rng(12345)
    n_dual = wrong = infeasible = 0
    for _ in range(400):
        n = int(rng.integers(2, 9))
        h, g, b, c, delta = _random_problem(rng, n)
        hg, hb = np.linalg.solve(h, g), np.linalg.solve(h, b)
        ours = cpo_step(*(torch.from_numpy(v) for v in (g, b, hg, hb)), c, delta)
        if ours.case not in ("both_active", "kl_only"):
            continue
        n_dual += 1
        x = loss_form_dual_with_ascent_r(g, b, hg, hb, c, delta)
        ref = _slsqp(h, g, b, c, delta, False)
        wrong += np.linalg.norm(x - ref) / np.linalg.norm(ref) > 1e-3
        infeasible += (0.5 * x @ h @ x > delta * (1 + 1e-6)) or (c + b @ x > 1e-6)
    print(
        f"dual-case problems: {n_dual}; transcribed public dual off the optimum (rel > 1e-3): "
        f"{wrong}; violating a constraint: {infeasible}; saferl.algos.math.cpo_step: 0 and 0 "
        "(tests/algos/test_math.py)"
    )


if __name__ == "__main__":
    main()

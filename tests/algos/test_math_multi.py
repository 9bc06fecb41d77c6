"""Oracle tests of the several-constraint CPO step: SLSQP on the same problems, in every case,
the reduction to the single-constraint step, and the KKT conditions of its multipliers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from saferl.algos.math import cpo_step, cpo_step_multi


def _problem(rng: np.random.Generator, n: int, m: int):
    a = rng.standard_normal((n, n))
    h = a @ a.T + 0.1 * np.eye(n)
    g = rng.standard_normal(n)
    B = rng.standard_normal((n, m))
    delta = float(10 ** rng.uniform(-3, -1))
    s = np.einsum("im,im->m", B, np.linalg.solve(h, B))
    # each c_i spread around +-sqrt(2 delta s_i): every case occurs
    c = rng.uniform(-2.8, 1.2, size=m) * np.sqrt(2 * delta * s)
    return h, g, B, c, delta


def _step(h, g, B, c, delta):
    return cpo_step_multi(
        torch.from_numpy(g),
        torch.from_numpy(B),
        torch.from_numpy(np.linalg.solve(h, g)),
        torch.from_numpy(np.linalg.solve(h, B)),
        c,
        delta,
    )


def _slsqp(h, g, B, c, delta, recovery: bool):
    """The oracle. Feasible: max g^T x s.t. c + B^T x <= 0, 1/2 x^T H x <= delta. Infeasible:
    min t s.t. c_i + b_i^T x <= t, 1/2 x^T H x <= delta (the smallest worst violation)."""
    n, m = B.shape
    best = None
    for ftol in (1e-11, 1e-10, 1e-12):
        for x0 in (np.zeros(n), -1e-3 * np.linalg.solve(h, B.sum(1))):
            if recovery:
                z0 = np.append(x0, float(np.max(c + B.T @ x0)) + 1.0)
                cons = [
                    {
                        "type": "ineq",
                        "fun": lambda z: delta - 0.5 * z[:n] @ h @ z[:n],
                        "jac": lambda z: np.append(-(h @ z[:n]), 0.0),
                    },
                    {
                        "type": "ineq",
                        "fun": lambda z: z[n] - (c + B.T @ z[:n]),
                        "jac": lambda z: np.hstack([-B.T, np.ones((m, 1))]),
                    },
                ]
                obj = (lambda z: z[n], lambda z: np.append(np.zeros(n), 1.0))
                start = z0
            else:
                cons = [
                    {
                        "type": "ineq",
                        "fun": lambda x: delta - 0.5 * x @ h @ x,
                        "jac": lambda x: -(h @ x),
                    },
                    {"type": "ineq", "fun": lambda x: -(c + B.T @ x), "jac": lambda x: -B.T},
                ]
                obj = (lambda x: -(g @ x), lambda x: -g)
                start = x0
            res = minimize(
                obj[0],
                start,
                jac=obj[1],
                constraints=cons,
                method="SLSQP",
                options={"ftol": ftol, "maxiter": 3000},
            )
            if res.success and (best is None or res.fun < best.fun):
                best = res
        if best is not None:
            break
    assert best is not None, "SLSQP failed on every start"
    return best.x[:n], best.fun


def test_multi_step_matches_slsqp_on_random_problems_in_every_case():
    rng = np.random.default_rng(2024)
    cases: Counter = Counter()
    n_active: Counter = Counter()
    worst = 0.0
    for _ in range(320):
        # more parameters than constraints (a policy has thousands): g is not in their span
        m = int(rng.integers(2, 5))
        n = int(rng.integers(m + 2, 10))
        h, g, B, c, delta = _problem(rng, n, m)
        st = _step(h, g, B, c, delta)
        cases[st.case] += 1
        x = st.x.numpy()
        assert 0.5 * x @ h @ x <= delta * (1 + 1e-6)
        recovery = st.case == "recovery"
        x_ref, f_ref = _slsqp(h, g, B, c, delta, recovery)
        if recovery:
            # the worst violation is as small as the trust region allows, and positive
            assert f_ref > -1e-9
            assert np.max(c + B.T @ x) <= f_ref + 1e-6 * max(abs(f_ref), 1e-9)
            assert np.isclose(st.weights.sum(), 1.0) and np.all(st.weights >= 0)
        else:
            n_active[len(st.active)] += 1
            assert np.all(c + B.T @ x <= 1e-7)
            assert g @ x >= -f_ref - 1e-6 * max(abs(f_ref), 1e-9)
            rel = np.linalg.norm(x - x_ref) / max(np.linalg.norm(x_ref), 1e-12)
            worst = max(worst, rel)
            assert rel <= 1e-3, (st.case, rel)
    for case in ("recovery", "both_active", "kl_only", "feasible"):
        assert cases[case] >= 10, cases
    assert n_active[1] >= 10 and n_active[2] >= 10, n_active
    print(f"cases={dict(cases)} active={dict(n_active)} worst relative error={worst:.2e}")


def test_with_one_constraint_it_is_the_single_constraint_step():
    rng = np.random.default_rng(99)
    seen = set()
    for _ in range(300):
        n = int(rng.integers(2, 9))
        h, g, B, c, delta = _problem(rng, n, 1)
        c = c * 1.6  # more recovery cases
        hg, hb = np.linalg.solve(h, g), np.linalg.solve(h, B[:, 0])
        one = cpo_step(
            torch.from_numpy(g), torch.from_numpy(B[:, 0]), torch.from_numpy(hg),
            torch.from_numpy(hb), float(c[0]), delta,
        )  # fmt: skip
        multi = _step(h, g, B, c, delta)
        seen.add(one.case)
        assert multi.case == one.case
        torch.testing.assert_close(multi.x, one.x, rtol=1e-9, atol=1e-12)
        if one.case in ("both_active", "kl_only"):
            assert multi.lam == pytest.approx(one.lam, rel=1e-9)
            assert multi.nu[0] == pytest.approx(one.nu, rel=1e-9, abs=1e-12)
    assert seen >= {"recovery", "both_active", "kl_only", "feasible"}


def test_multipliers_satisfy_kkt():
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(200):
        h, g, B, c, delta = _problem(rng, 6, 3)
        st = _step(h, g, B, c, delta)
        if st.case not in ("both_active", "kl_only"):
            continue
        x, hg, hB = st.x.numpy(), np.linalg.solve(h, g), np.linalg.solve(h, B)
        np.testing.assert_allclose(x, (hg - hB @ st.nu) / st.lam, rtol=1e-9)
        assert st.lam > 0 and np.all(st.nu >= 0)
        assert abs(0.5 * x @ h @ x - delta) <= 1e-9 * delta
        slack = c + B.T @ x
        assert np.all(np.abs(st.nu * slack) <= 1e-9 * (np.abs(c) + 1e-9))  # complementarity
        checked += 1
    assert checked >= 50


def test_degenerate_cost_gradients():
    g = torch.tensor([1.0, 2.0], dtype=torch.float64)
    B = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    # constraint 0 has no gradient and is satisfied: dropped; constraint 1 decides
    st = cpo_step_multi(g, B, g / 2, B / 2, [-1.0, -10.0], 0.01)
    assert st.case == "feasible"
    # constraint 0 violated and no step can change it: recovery on the others
    st = cpo_step_multi(g, B, g / 2, B / 2, [0.5, 0.3], 0.01)
    assert st.case == "recovery" and st.x[0] < 0 and st.weights[1] == 1.0
    # every gradient degenerate, all satisfied: the plain trust-region step
    st = cpo_step_multi(
        g, torch.zeros(2, 2, dtype=torch.float64), g / 2, torch.zeros(2, 2), [-1, -1], 0.01
    )
    assert st.case == "trpo" and math.isclose(float(st.x @ (2 * st.x)) / 2, 0.01, rel_tol=1e-9)
    with pytest.raises(ValueError, match="c has 3 values for 2 constraints"):
        cpo_step_multi(g, B, g / 2, B / 2, [0.0, 0.0, 0.0], 0.01)

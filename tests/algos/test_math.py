"""Oracle tests of the pure trust-region math: CPO step vs SLSQP, FVP vs autograd Hessian,
conjugate gradient vs a direct solve, line search restore-on-failure."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from saferl.algos.math import (
    CASES,
    backtracking_line_search,
    conjugate_gradient,
    cpo_step,
    fisher_vector_product,
    flat_params,
    gaussian_kl,
    gaussian_mlp_fvp,
    set_flat_params_,
)
from saferl.algos.networks import GaussianActor


def _random_problem(rng: np.random.Generator, n: int):
    m = rng.standard_normal((n, n))
    h = m @ m.T + 0.1 * np.eye(n)
    g = rng.standard_normal(n)
    b = rng.standard_normal(n)
    delta = float(10 ** rng.uniform(-3, -1))
    s = b @ np.linalg.solve(h, b)
    # c spread around +-sqrt(2 delta s): every case of the step occurs.
    c = float(rng.uniform(-2.0, 2.0) * math.sqrt(2 * delta * s))
    return h, g, b, c, delta


def _slsqp(h, g, b, c, delta, recovery: bool):
    """The oracle: a general constrained solver on the same problem.

    Feasible problems: max g^T x s.t. c + b^T x <= 0, 1/2 x^T H x <= delta.
    Infeasible ones (recovery): min b^T x s.t. 1/2 x^T H x <= delta.
    """
    n = len(g)
    kl = {
        "type": "ineq",
        "fun": lambda x: delta - 0.5 * x @ h @ x,
        "jac": lambda x: -(h @ x),
    }
    lin = {"type": "ineq", "fun": lambda x: -(c + b @ x), "jac": lambda x: -b}
    if recovery:
        obj, jac, cons = (lambda x: b @ x), (lambda x: b), [kl]
    else:
        obj, jac, cons = (lambda x: -(g @ x)), (lambda x: -g), [kl, lin]
    best = None
    # SLSQP sometimes stops with "positive directional derivative in linesearch" on these
    # tiny-scale problems; a few tolerances and starts make it reliable. Keep the best success.
    for ftol in (1e-10, 1e-9, 1e-11):
        for x0 in (np.zeros(n), -1e-3 * np.linalg.solve(h, b)):
            res = minimize(
                obj,
                x0,
                jac=jac,
                constraints=cons,
                method="SLSQP",
                options={"ftol": ftol, "maxiter": 2000},
            )
            if res.success and (best is None or res.fun < best.fun):
                best = res
        if best is not None:
            break
    assert best is not None, "SLSQP failed on every start"
    return best.x


def test_cpo_step_matches_slsqp_on_random_problems_in_every_case():
    rng = np.random.default_rng(12345)
    cases = Counter()
    worst_rel = 0.0
    n_problems = 400
    for _ in range(n_problems):
        n = int(rng.integers(2, 9))
        h, g, b, c, delta = _random_problem(rng, n)
        hinv_g = torch.from_numpy(np.linalg.solve(h, g))
        hinv_b = torch.from_numpy(np.linalg.solve(h, b))
        step = cpo_step(torch.from_numpy(g), torch.from_numpy(b), hinv_g, hinv_b, c, delta)
        cases[step.case] += 1
        x = step.x.numpy()
        recovery = step.case == "recovery"
        # Trust region always holds (to 1e-6 relative to delta, which is <= 0.1).
        assert 0.5 * x @ h @ x <= delta * (1 + 1e-6)
        if recovery:
            # Recovery happens only where no point of the trust region is feasible.
            assert c - math.sqrt(2 * delta * (b @ np.linalg.solve(h, b))) > 0
        else:
            assert c + b @ x <= 1e-6
        x_ref = _slsqp(h, g, b, c, delta, recovery)
        rel = np.linalg.norm(x - x_ref) / max(np.linalg.norm(x_ref), 1e-12)
        worst_rel = max(worst_rel, rel)
        assert rel <= 1e-3, (step.case, rel, c, delta)
        # The optimum value matches too (objective of the problem actually solved).
        if recovery:
            assert b @ x <= b @ x_ref + 1e-6 * abs(b @ x_ref)
        else:
            assert g @ x >= g @ x_ref - 1e-6 * max(abs(g @ x_ref), 1e-9)
    for case in ("recovery", "both_active", "kl_only", "feasible"):
        assert cases[case] >= 10, cases
    print(f"cases={dict(cases)} worst relative error={worst_rel:.2e}")


def test_cpo_step_duals_satisfy_kkt():
    """lambda*, nu* are the KKT multipliers: x = (H^-1 g - nu H^-1 b)/lambda, complementarity."""
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(200):
        h, g, b, c, delta = _random_problem(rng, 5)
        hg = torch.from_numpy(np.linalg.solve(h, g))
        hb = torch.from_numpy(np.linalg.solve(h, b))
        st = cpo_step(torch.from_numpy(g), torch.from_numpy(b), hg, hb, c, delta)
        if st.case not in ("both_active", "kl_only"):
            continue
        seen.add(st.case)
        x = st.x.numpy()
        np.testing.assert_allclose(x, (hg.numpy() - st.nu * hb.numpy()) / st.lam, rtol=1e-10)
        assert st.lam > 0 and st.nu >= 0
        assert abs(0.5 * x @ h @ x - delta) <= 1e-9 * delta  # lambda > 0: KL active
        if st.nu > 0:
            assert abs(c + b @ x) <= 1e-9 * (abs(c) + 1e-9)
    assert seen == {"both_active", "kl_only"}


def test_cpo_step_degenerate_cost_gradient_is_trpo():
    g = torch.tensor([1.0, 2.0], dtype=torch.float64)
    b = torch.zeros(2, dtype=torch.float64)
    st = cpo_step(g, b, g / 2, b, c=-1.0, delta=0.01)
    assert st.case == "trpo"
    # H = 2I: 1/2 x^T H x = delta exactly, along g.
    assert math.isclose(float(st.x @ st.x), 0.01, rel_tol=1e-12)
    assert CASES[st.case] == st.case_code


def _tiny_policy(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    log_std = torch.nn.Parameter(torch.tensor([-0.3, 0.2]))
    return net, log_std


def test_fisher_vector_product_equals_autograd_hessian_of_kl():
    net, log_std = _tiny_policy()
    params = [*net.parameters(), log_std]
    obs = torch.randn(11, 3)
    with torch.no_grad():
        mu_old = net(obs).clone()
        ls_old = log_std.detach().clone()
    theta0 = flat_params(params)
    shapes = [p.shape for p in params]

    def kl_of_flat(theta):
        # Functional KL as a function of the flat parameter vector (for the Hessian oracle).
        chunks, off = [], 0
        for shp in shapes:
            k = int(np.prod(shp))
            chunks.append(theta[off : off + k].view(shp))
            off += k
        w1, b1, w2, b2, ls = chunks
        mu = torch.tanh(obs @ w1.T + b1) @ w2.T + b2
        return gaussian_kl(mu_old, ls_old, mu, ls).mean()

    hess = torch.autograd.functional.hessian(kl_of_flat, theta0)
    mean_kl = gaussian_kl(mu_old, ls_old, net(obs), log_std).mean()
    damping = 0.05
    fvp = fisher_vector_product(mean_kl, params, damping)
    for i in range(3):
        v = torch.randn(theta0.numel(), generator=torch.Generator().manual_seed(i))
        expected = hess @ v + damping * v
        torch.testing.assert_close(fvp(v), expected, rtol=1e-4, atol=1e-6)
    # The Hessian is not trivially zero/identity (the oracle has teeth).
    assert hess.abs().max() > 1e-2


def _kl_hessian(actor, obs):
    """Autograd Hessian of the mean KL(pi_old || pi_theta) at theta = theta_old (the oracle)."""
    params = list(actor.parameters())
    theta0 = flat_params(params)
    with torch.no_grad():
        mu_old, ls_old = actor(obs)
        ls_old = ls_old.clone()

    def kl_of_flat(theta):
        chunks, off = {}, 0
        for name, p in actor.named_parameters():
            chunks[name] = theta[off : off + p.numel()].view_as(p)
            off += p.numel()
        mu, ls = torch.func.functional_call(actor, chunks, (obs,))
        return gaussian_kl(mu_old, ls_old, mu, ls).mean()

    return torch.autograd.functional.hessian(kl_of_flat, theta0), theta0.numel()


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "gelu"])
def test_closed_form_gaussian_mlp_fvp_equals_autograd_hessian(activation):
    torch.manual_seed(1)
    actor = GaussianActor(3, 2, hidden_sizes=(5, 4), activation=activation, output_gain=1.0)
    with torch.no_grad():
        actor.log_std.copy_(torch.tensor([-0.4, 0.3]))
    obs = torch.randn(9, 3)
    hess, n = _kl_hessian(actor, obs)
    damping = 0.03
    fvp = gaussian_mlp_fvp(actor.mu, actor.log_std, obs, damping)
    v = torch.randn(3, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = v @ hess.double().T + damping * v
    # a block of vectors at once, and one vector (float64 in, float64 out)
    torch.testing.assert_close(fvp(v), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fvp(v[1]), expected[1], rtol=1e-4, atol=1e-6)
    assert fvp(v).dtype == torch.float64
    # and the generic double-backward product agrees with both
    with torch.no_grad():
        mu_old, ls_old = actor(obs)
    mu, ls = actor(obs)
    generic = fisher_vector_product(
        gaussian_kl(mu_old, ls_old.detach().clone(), mu, ls).mean(),
        list(actor.parameters()),
        damping,
    )
    torch.testing.assert_close(generic(v[0].float()).double(), expected[0], rtol=1e-4, atol=1e-5)


def test_gaussian_kl_sums_over_action_dims_and_matches_torch_distributions():
    mu0, mu1 = torch.randn(5, 3), torch.randn(5, 3)
    ls0, ls1 = torch.randn(3), torch.randn(3)
    p = torch.distributions.Normal(mu0, ls0.exp())
    q = torch.distributions.Normal(mu1, ls1.exp())
    expected = torch.distributions.kl_divergence(p, q).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu0, ls0, mu1, ls1), expected)


def test_conjugate_gradient_matches_linalg_solve():
    gen = torch.Generator().manual_seed(3)
    n = 20
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
    rhs = torch.randn(n, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, rhs, iters=200, residual_tol=1e-28)
    torch.testing.assert_close(x, torch.linalg.solve(a, rhs), rtol=1e-8, atol=1e-10)
    # Few iterations on a well-conditioned system already give a close answer.
    a2 = torch.eye(n, dtype=torch.float64) + 0.1 * (m @ m.T) / n
    x2 = conjugate_gradient(lambda v: a2 @ v, rhs, iters=15, residual_tol=1e-20)
    torch.testing.assert_close(x2, torch.linalg.solve(a2, rhs), rtol=1e-5, atol=1e-7)


def test_block_conjugate_gradient_solves_several_systems_in_lockstep():
    gen = torch.Generator().manual_seed(4)
    n = 12
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = m @ m.T + torch.eye(n, dtype=torch.float64)
    rhs = torch.randn(3, n, generator=gen, dtype=torch.float64)
    rhs[2] = 0.0  # an already-solved system must stay at 0, not produce NaN
    x = conjugate_gradient(lambda v: v @ a.T, rhs, iters=100, residual_tol=1e-26)
    torch.testing.assert_close(x, torch.linalg.solve(a, rhs.T).T, rtol=1e-8, atol=1e-10)
    assert torch.equal(x[2], torch.zeros(n, dtype=torch.float64))


def test_line_search_restores_parameters_exactly_when_nothing_is_accepted():
    p = torch.nn.Parameter(torch.tensor([0.1234567, -2.5, 3.0]))
    theta0 = flat_params([p])
    seen = []

    def evaluate():
        seen.append(p.detach().clone())
        return {"kl": float(p.detach().sum())}

    res = backtracking_line_search(
        lambda th: set_flat_params_([p], th),
        theta0,
        torch.tensor([1.0, 1.0, 1.0]),
        evaluate,
        accept=lambda st: False,
        coeff=0.5,
        max_iters=4,
    )
    assert not res.accepted and res.k == -1 and res.tried == 4
    assert torch.equal(p.detach(), theta0)
    torch.testing.assert_close(seen[2], theta0 + 0.25)


def test_line_search_accepts_first_good_point_and_rejects_non_finite():
    p = torch.nn.Parameter(torch.zeros(2))
    theta0 = flat_params([p])
    values = iter([float("nan"), 5.0, 0.5, 0.1])
    res = backtracking_line_search(
        lambda th: set_flat_params_([p], th),
        theta0,
        torch.ones(2),
        lambda: {"kl": next(values)},
        accept=lambda st: st["kl"] <= 1.0,  # NaN would compare False anyway; 5.0 rejected
        coeff=0.5,
        max_iters=4,
    )
    assert res.accepted and res.k == 2
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.25))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_line_search_non_finite_is_rejected_even_if_accept_says_yes(bad):
    p = torch.nn.Parameter(torch.zeros(1))
    res = backtracking_line_search(
        lambda th: set_flat_params_([p], th),
        flat_params([p]),
        torch.ones(1),
        lambda: {"kl": bad},
        accept=lambda st: True,
        coeff=0.5,
        max_iters=3,
    )
    assert not res.accepted and float(p.detach()) == 0.0

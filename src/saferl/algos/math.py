"""Pure functions behind the trust-region step: flat parameters, conjugate gradient, the
Fisher-vector product, the CPO step (closed-form dual) and the backtracking line search.

Conventions (see ``docs/algorithms.md`` and the CPO specification):

* **Ascent form.** ``g`` is the gradient of the reward surrogate ``mean_t[ratio_t * A_r,t]``
  (to be *increased*), ``b`` the gradient of the cost surrogate ``mean_t[ratio_t * A_c,t]``;
  the step solves ``max_x g^T x  s.t.  c + b^T x <= 0,  1/2 x^T H x <= delta``.
* **Units.** ``c = (J_c - d) / T`` (episode cost minus limit, divided by the mean episode
  length), i.e. per-step units, the same as ``b^T x``.
* ``H`` is the Hessian of the mean KL(pi_old || pi) (KL summed over action dimensions, averaged
  over states), used only through products ``H v`` and solved only by conjugate gradient.

Distributed: the Fisher-vector product all-reduces its result (count-weighted) through
:mod:`saferl.algos.dist`; everything else here is local arithmetic on already-reduced vectors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from saferl.algos.dist import weighted_average_

__all__ = [
    "CASES",
    "CPOStep",
    "CPOStepMulti",
    "LineSearchResult",
    "backtracking_line_search",
    "conjugate_gradient",
    "cpo_step",
    "cpo_step_multi",
    "fisher_vector_product",
    "flat_grad",
    "flat_params",
    "gaussian_kl",
    "gaussian_mlp_fvp",
    "set_flat_params_",
]

# Optimisation cases of the CPO step, with stable integer codes for CSV logs and histograms.
CASES: dict[str, int] = {
    "recovery": 0,  # no point of the trust region is feasible: decrease the cost only
    "both_active": 1,  # dual with nu* > 0: the linear constraint and the trust region both bind
    "kl_only": 2,  # dual with nu* = 0: constraint inactive at the trust-region optimum
    "feasible": 3,  # the whole trust region is feasible: TRPO step
    "trpo": 4,  # degenerate b (s ~ 0) with c < 0: plain TRPO step
}

_EPS = 1e-12


# ------------------------------------------------------------------------------------------
# Flat parameters
# ------------------------------------------------------------------------------------------


def flat_params(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameters into one detached 1-D tensor (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


def set_flat_params_(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy a 1-D tensor (as from :func:`flat_params`) back into ``params`` in place."""
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p).to(p.dtype))
            offset += n
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} elements, parameters need {offset}")


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> torch.Tensor:
    """Gradient of a scalar ``output`` w.r.t. ``params`` as one 1-D tensor (zeros if unused)."""
    grads = torch.autograd.grad(
        output, params, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


# ------------------------------------------------------------------------------------------
# KL, Fisher-vector product, conjugate gradient
# ------------------------------------------------------------------------------------------


def gaussian_kl(
    mean_old: torch.Tensor, log_std_old: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_old, std_old) || N(mean, std)) per state, **summed over action dimensions**.

    Shapes: means ``(B, A)``; log-stds ``(A,)`` or ``(B, A)``. Returns ``(B,)``.
    """
    var_old = torch.exp(2.0 * log_std_old)
    var = torch.exp(2.0 * log_std)
    kl = log_std - log_std_old + (var_old + (mean_old - mean) ** 2) / (2.0 * var) - 0.5
    return kl.sum(-1)


def fisher_vector_product(
    mean_kl: torch.Tensor,
    params: Sequence[torch.Tensor],
    damping: float,
    count: int | float = 1,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Build ``v -> (H + damping I) v`` with ``H`` the Hessian of ``mean_kl`` w.r.t. ``params``.

    ``mean_kl`` must be the mean over states of the KL to a *detached* copy of the current
    policy, evaluated at the current parameters (where its gradient is 0 and its Hessian is the
    Fisher information). The gradient graph is built once; each product is one double-backward
    pass. The product of the local KL is count-weighted-averaged over ranks (``count`` = local
    number of states), so it is the product of the global mean KL's Hessian.

    The returned function takes and returns 1-D tensors of the flat parameter size; its output
    has the input's dtype (e.g. float64 for conjugate gradient in double precision).
    """
    grad_kl = flat_grad(mean_kl, params, retain_graph=True, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        gv = torch.dot(grad_kl, v.to(grad_kl.dtype))
        hv = flat_grad(gv, params, retain_graph=True)
        weighted_average_(hv, count)
        return hv.to(v.dtype) + damping * v

    return fvp


def _activation_derivative(module: nn.Module, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """d act / d pre, elementwise, for the activations the saferl MLPs use."""
    if isinstance(module, nn.Tanh):
        return 1.0 - out * out
    if isinstance(module, nn.ReLU):
        return (pre > 0).to(pre.dtype)
    if isinstance(module, nn.ELU) and module.alpha == 1.0:
        return torch.where(pre > 0, torch.ones_like(pre), out + 1.0)
    if isinstance(module, nn.GELU) and module.approximate == "none":
        cdf = 0.5 * (1.0 + torch.erf(pre * (1.0 / math.sqrt(2.0))))
        pdf = torch.exp(-0.5 * pre * pre) * (1.0 / math.sqrt(2.0 * math.pi))
        return cdf + pre * pdf
    raise TypeError(f"no closed-form derivative for {type(module).__name__}")


def gaussian_mlp_fvp(
    mlp: nn.Sequential,
    log_std: torch.Tensor,
    obs: torch.Tensor,
    damping: float,
    count: int | float | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Fisher-vector product of a Gaussian policy with an MLP mean and state-independent
    log-std, in closed form (no double backward).

    For ``pi = N(mu_theta(s), diag(sigma^2))`` the Hessian of the mean KL(pi_old || pi) at
    ``pi = pi_old`` (KL summed over action dims, averaged over the ``m`` states) is block
    diagonal: ``J^T diag(1/sigma^2) J / m`` for the mean parameters (``J`` the Jacobian of
    ``mu`` over the batch) and ``2 I`` for ``log_std``. ``J v`` is propagated forward and
    ``J^T w`` backward by hand through the Linear/activation layers, for a whole block of
    vectors at once, so that conjugate gradient can solve for ``g`` and ``b`` together.

    Args:
        mlp: the mean network (``nn.Linear`` and tanh/relu/elu/gelu layers only).
        log_std: the ``(A,)`` log-std parameter; the flat parameter order is
            ``[log_std, *mlp.parameters()]`` (that of ``GaussianActor.parameters()``: a
            module's own parameters come before its submodules').
        obs: ``(m, d)`` states (normalised) at which the KL is averaged.
        damping: added ``damping * v``.
        count: local number of states for the count-weighted all-reduce (default ``m``).

    Returns:
        ``v -> (H + damping I) v`` for ``v`` of shape ``(p,)`` or ``(k, p)``, in ``v``'s dtype.
    """
    layers = list(mlp)
    with torch.no_grad():
        x = obs.detach()
        saved: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        for layer in layers:
            if isinstance(layer, nn.Linear):
                y = layer(x)
            else:
                y = layer(x)
                _activation_derivative(layer, x, y)  # fail early on an unsupported layer
            saved.append((layer, x, y))
            x = y
        inv_var = torch.exp(-2.0 * log_std.detach())
    m = obs.shape[0]
    count = m if count is None else count
    shapes = [(p.numel(), p.shape) for p in mlp.parameters()]
    n_ls = log_std.numel()
    derivs = {
        i: _activation_derivative(layer, xin, yout)
        for i, (layer, xin, yout) in enumerate(saved)
        if not isinstance(layer, nn.Linear)
    }

    def fvp(v: torch.Tensor) -> torch.Tensor:
        single = v.dim() == 1
        vv = (v.unsqueeze(0) if single else v).to(obs.dtype)
        k = vv.shape[0]
        v_ls = vv[:, :n_ls]
        chunks, off = [], n_ls
        for n, shp in shapes:
            chunks.append(vv[:, off : off + n].reshape(k, *shp))
            off += n
        # forward: tangent t = J v, (k, m, width)
        t: torch.Tensor | None = None
        ci = 0
        for i, (layer, xin, _) in enumerate(saved):
            if isinstance(layer, nn.Linear):
                dw, db = chunks[ci], chunks[ci + 1]
                ci += 2
                t_new = torch.matmul(xin, dw.transpose(1, 2)) + db.unsqueeze(1)
                if t is not None:
                    t_new = t_new + torch.matmul(t, layer.weight.detach().T)
                t = t_new
            else:
                t = t * derivs[i]
        if t is None:
            raise ValueError("the mean network has no Linear layer")
        # backward: delta = diag(1/sigma^2) J v / m, then J^T delta layer by layer
        delta = t * (inv_var / m)
        grads: list[torch.Tensor] = []
        for i in range(len(saved) - 1, -1, -1):
            layer, xin, _ = saved[i]
            if isinstance(layer, nn.Linear):
                grads.append(delta.sum(1))  # bias
                grads.append(torch.matmul(delta.transpose(1, 2), xin))  # weight (k, out, in)
                if i > 0:
                    delta = torch.matmul(delta, layer.weight.detach())
            else:
                delta = delta * derivs[i]
        grads.reverse()
        out = torch.cat([2.0 * v_ls] + [gr.reshape(k, -1) for gr in grads], dim=1)
        weighted_average_(out, count)
        out = out.to(v.dtype) + damping * (v.unsqueeze(0) if single else v)
        return out[0] if single else out

    return fvp


def conjugate_gradient(
    avp: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given by ``avp``.

    Args:
        avp: ``v -> A v``; applied to 1-D vectors, or row-wise to ``(k, n)`` blocks when ``b``
            is 2-D (several right-hand sides solved in lockstep, one product per iteration).
        b: right-hand side ``(n,)`` or ``(k, n)``.
        iters: maximum iterations (exact in exact arithmetic after ``n`` iterations).
        residual_tol: a system stops (its step size becomes 0) once its squared residual norm
            falls below this.
    """
    single = b.dim() == 1
    bb = b.unsqueeze(0) if single else b
    x = torch.zeros_like(bb)
    r = bb.clone()
    p = bb.clone()
    rr = (r * r).sum(1)
    for _ in range(iters):
        active = rr > residual_tol
        if not bool(active.any()):
            break
        ap = avp(p[0]).unsqueeze(0) if single else avp(p)
        pap = (p * ap).sum(1)
        # Converged rows and (numerically) non-positive curvature stop moving.
        ok = active & (pap > 0)
        if not bool(ok.any()):
            break
        alpha = torch.where(ok, rr / torch.where(ok, pap, torch.ones_like(pap)), 0.0)
        x += alpha.unsqueeze(1) * p
        r -= alpha.unsqueeze(1) * ap
        rr_new = (r * r).sum(1)
        beta = torch.where(ok, rr_new / torch.where(ok, rr, torch.ones_like(rr)), 0.0)
        p = torch.where(ok.unsqueeze(1), r + beta.unsqueeze(1) * p, p)
        rr = torch.where(ok, rr_new, torch.zeros_like(rr))
    return x[0] if single else x


# ------------------------------------------------------------------------------------------
# The CPO step
# ------------------------------------------------------------------------------------------


@dataclass
class CPOStep:
    """Result of :func:`cpo_step`.

    Attributes:
        x: the step in parameter space (1-D float64).
        case: one of :data:`CASES` (``recovery``, ``both_active``, ``kl_only``, ``feasible``,
            ``trpo``).
        lam: optimal trust-region multiplier lambda* (``nan`` when not from the dual).
        nu: optimal constraint multiplier nu* (0 when the constraint is inactive; ``nan`` in
            recovery).
        q, r, s: ``g^T H^-1 g``, ``g^T H^-1 b``, ``b^T H^-1 b``.
        c: the constraint value passed in (per-step units).
    """

    x: torch.Tensor
    case: str
    lam: float
    nu: float
    q: float
    r: float
    s: float
    c: float
    A: float = field(default=math.nan)
    B: float = field(default=math.nan)

    @property
    def case_code(self) -> int:
        return CASES[self.case]


def _interval_a(c: float, r: float) -> tuple[float, float]:
    """lambda interval where nu* > 0, i.e. lambda*c + r > 0 (empty -> lo > hi)."""
    if c > 0:
        return max(0.0, -r / c), math.inf
    if c < 0:
        return 0.0, -r / c  # empty when r <= 0
    return (0.0, math.inf) if r > 0 else (1.0, 0.0)


def _interval_b(c: float, r: float) -> tuple[float, float]:
    """lambda interval where nu* = 0, i.e. lambda*c + r <= 0 (empty -> lo > hi)."""
    if c > 0:
        return 0.0, -r / c  # empty when r >= 0
    if c < 0:
        return max(0.0, -r / c), math.inf
    return (0.0, math.inf) if r <= 0 else (1.0, 0.0)


def _project(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def cpo_step(
    g: torch.Tensor,
    b: torch.Tensor,
    hinv_g: torch.Tensor,
    hinv_b: torch.Tensor,
    c: float,
    delta: float,
    s_tol: float = 1e-8,
) -> CPOStep:
    """Closed-form solution of ``max_x g^T x  s.t.  c + b^T x <= 0,  1/2 x^T H x <= delta``.

    Args:
        g: reward-surrogate gradient (ascent direction), 1-D float64.
        b: cost-surrogate gradient, 1-D float64.
        hinv_g: ``H^-1 g`` (e.g. from conjugate gradient).
        hinv_b: ``H^-1 b`` (from the same solver, so that q, r, s are consistent).
        c: constraint value ``(J_c - d) / T`` in per-step units (> 0: violated).
        delta: trust-region size (mean KL).
        s_tol: ``s = b^T H^-1 b`` below this counts as a degenerate cost gradient.

    Returns:
        :class:`CPOStep`. In the ``recovery`` case the problem is infeasible and ``x`` minimises
        ``b^T x`` over the trust region (it ignores the reward).
    """
    g = g.double()
    b = b.double()
    hinv_g = hinv_g.double()
    hinv_b = hinv_b.double()
    c = float(c)
    delta = float(delta)
    q = float(torch.dot(g, hinv_g))
    r = float(torch.dot(g, hinv_b))
    s = float(torch.dot(b, hinv_b))

    def tr_step() -> torch.Tensor:
        return math.sqrt(2.0 * delta / q) * hinv_g if q > _EPS else torch.zeros_like(hinv_g)

    if s <= s_tol:
        if c < 0:
            return CPOStep(tr_step(), "trpo", math.nan, 0.0, q, r, s, c)
        # b ~ 0 and the constraint is violated: no direction reduces the cost.
        return CPOStep(torch.zeros_like(hinv_g), "recovery", math.nan, math.nan, q, r, s, c)

    A = q - r * r / s
    B = 2.0 * delta - c * c / s
    if B <= 0 and c < 0:
        return CPOStep(tr_step(), "feasible", math.nan, 0.0, q, r, s, c, A, B)
    if B <= 0 and c > 0:
        x = -math.sqrt(2.0 * delta / s) * hinv_b
        return CPOStep(x, "recovery", math.nan, math.nan, q, r, s, c, A, B)

    # Dual: minimise D(lam, nu) over lam > 0, nu >= 0; nu eliminated per branch.
    A = max(A, 0.0)  # >= 0 by Cauchy-Schwarz; clamp roundoff
    lo_a, hi_a = _interval_a(c, r)
    lo_b, hi_b = _interval_b(c, r)
    best_d, lam = math.inf, math.nan
    if lo_a <= hi_a:
        lam_a = _project(math.sqrt(A / B), lo_a, hi_a)
        if lam_a > 0:
            d_a = 0.5 * (A / lam_a + B * lam_a) - r * c / s
            best_d, lam = d_a, lam_a
    if lo_b <= hi_b:
        lam_b = _project(math.sqrt(q / (2.0 * delta)), lo_b, hi_b)
        if lam_b > 0:
            d_b = 0.5 * (q / lam_b + 2.0 * delta * lam_b)
            if d_b < best_d:
                best_d, lam = d_b, lam_b
    if not (lam > 0 and math.isfinite(lam)):
        # Only reachable with g ~ 0 and an inactive constraint: nothing to gain, stay put.
        return CPOStep(torch.zeros_like(hinv_g), "kl_only", math.nan, 0.0, q, r, s, c, A, B)
    nu = max(0.0, (lam * c + r) / s)
    x = (hinv_g - nu * hinv_b) / lam
    return CPOStep(x, "both_active" if nu > 0 else "kl_only", lam, nu, q, r, s, c, A, B)


# ------------------------------------------------------------------------------------------
# The CPO step with several constraints
# ------------------------------------------------------------------------------------------


@dataclass
class CPOStepMulti:
    """Result of :func:`cpo_step_multi` (m constraints).

    Attributes:
        x: the step in parameter space (1-D float64).
        case: one of :data:`CASES`; ``both_active`` when at least one constraint binds.
        lam: trust-region multiplier lambda* (``nan`` when not from the dual).
        nu: ``(m,)`` constraint multipliers nu* (0 for inactive constraints; ``nan`` in
            recovery).
        active: indices of the binding constraints.
        weights: ``(m,)`` in recovery, the weights w* of the constraints whose combination the
            step decreases (they sum to 1; ``nan`` otherwise).
        q: ``g^T H^-1 g``; r: ``(m,)`` ``B^T H^-1 g``; S: ``(m, m)`` ``B^T H^-1 B``.
        c: ``(m,)`` the constraint values passed in (per-step units).
    """

    x: torch.Tensor
    case: str
    lam: float
    nu: np.ndarray
    active: tuple[int, ...]
    weights: np.ndarray
    q: float
    r: np.ndarray
    S: np.ndarray
    c: np.ndarray

    @property
    def case_code(self) -> int:
        return CASES[self.case]


def _subsets(idx: Sequence[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for k in range(len(idx) + 1):
        out.extend(itertools.combinations(idx, k))
    return out


def _solve(S: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """``S^-1 rhs`` for a well-conditioned ``S``, else None (a degenerate subset is skipped)."""
    if np.linalg.cond(S) > 1e12:
        return None
    return np.linalg.solve(S, rhs)


def _minimax_weights(c: np.ndarray, S: np.ndarray, delta: float) -> tuple[np.ndarray, float]:
    """``max over w in the simplex of c^T w - sqrt(2 delta w^T S w)`` and its maximiser.

    This is the dual of ``min over the trust region of max_i (c_i + b_i^T x)``: the value is the
    smallest worst violation the trust region allows (> 0: the problem is infeasible). On a
    support A the maximiser satisfies ``S_AA u = (c_A - mu 1) / sqrt(2 delta)`` with
    ``u^T S_AA u = 1`` and ``w = u / sum(u)``; the value is mu. Every support is tried and the
    KKT point kept (the problem is concave, so a KKT point is the maximum).
    """
    m = len(c)
    best_mu, best_w = -math.inf, np.full(m, math.nan)
    root = math.sqrt(2.0 * delta)
    for A in _subsets(range(m))[1:]:
        ia = list(A)
        Saa, ca, ones = S[np.ix_(ia, ia)], c[ia], np.ones(len(ia))
        si_one, si_c = _solve(Saa, ones), _solve(Saa, ca)
        if si_one is None or si_c is None:
            continue
        a, b, e = ones @ si_one, ones @ si_c, ca @ si_c
        disc = b * b - a * (e - 2.0 * delta)
        if a <= _EPS or disc < 0:
            continue
        for mu in ((b + math.sqrt(disc)) / a, (b - math.sqrt(disc)) / a):
            u = (si_c - mu * si_one) / root
            if np.any(u <= 0):
                continue
            w = np.zeros(m)
            w[ia] = u / u.sum()
            norm = math.sqrt(max(float(w @ S @ w), 0.0))
            grad = c - root * (S @ w) / norm  # dphi/dw; KKT: <= mu off the support
            if np.all(grad <= mu + 1e-9 * (1.0 + abs(mu))) and mu > best_mu:
                best_mu, best_w = float(mu), w
    return best_w, best_mu


def cpo_step_multi(
    g: torch.Tensor,
    B: torch.Tensor,
    hinv_g: torch.Tensor,
    hinv_B: torch.Tensor,
    c: Sequence[float] | np.ndarray | torch.Tensor,
    delta: float,
    s_tol: float = 1e-8,
) -> CPOStepMulti:
    """Exact solution of ``max_x g^T x  s.t.  c_i + b_i^T x <= 0 (i = 1..m),  1/2 x^T H x <= delta``.

    The dual is ``min over lambda > 0, nu >= 0 of (q - 2 r^T nu + nu^T S nu) / (2 lambda)
    + lambda delta - c^T nu``. For a set A of binding constraints its stationary point is
    ``lambda = sqrt((q - r_A^T S_AA^-1 r_A) / (2 delta - c_A^T S_AA^-1 c_A))`` and
    ``nu_A = S_AA^-1 (r_A + lambda c_A)``, the single-constraint formulas with the scalars made
    matrices; every subset of the m constraints is tried (m is small) and the one whose point
    satisfies every KKT condition (nu_A >= 0, the other constraints satisfied) with the lowest
    dual value is kept. With m = 1 this is :func:`cpo_step`.

    Cases: ``feasible`` (the whole trust region satisfies every constraint: TRPO step),
    ``kl_only`` (no constraint binds at the trust-region optimum), ``both_active`` (some bind),
    ``trpo`` (every cost gradient degenerate, every constraint satisfied) and ``recovery``: no
    point of the trust region satisfies all constraints. Recovery then takes the step that
    minimises the *worst* violation ``max_i (c_i + b_i^T x)`` over the trust region: it lowers
    the most violated constraint first, and lowers several together where that is what keeps
    the worst one lowest, so no group's violation is traded for another's (with m = 1 it is the
    usual ``-sqrt(2 delta / s) H^-1 b``). Constraints whose cost gradient is degenerate
    (``b_i^T H^-1 b_i <= s_tol``) do not depend on the step: satisfied ones are dropped;
    a violated one makes the problem infeasible and recovery works on the others.

    Args:
        g: reward-surrogate gradient (ascent direction), ``(n,)``.
        B: ``(n, m)`` cost-surrogate gradients, one column per constraint.
        hinv_g: ``H^-1 g``; hinv_B: ``(n, m)`` ``H^-1 B`` (same solver, for consistency).
        c: ``(m,)`` constraint values ``(J_c,i - d_i) / T`` in per-step units (> 0: violated).
        delta: trust-region size (mean KL).
        s_tol: degenerate cost-gradient threshold, as in :func:`cpo_step`.
    """
    g, hinv_g = g.double(), hinv_g.double()
    B, hinv_B = B.double().reshape(len(g), -1), hinv_B.double().reshape(len(g), -1)
    c = np.asarray(torch.as_tensor(c, dtype=torch.float64).cpu(), np.float64).reshape(-1)
    m = B.shape[1]
    if len(c) != m:
        raise ValueError(f"c has {len(c)} values for {m} constraints")
    delta = float(delta)
    q = float(torch.dot(g, hinv_g))
    r = (B.T @ hinv_g).cpu().numpy()
    S = (B.T @ hinv_B).cpu().numpy()
    S = 0.5 * (S + S.T)
    nan_m = np.full(m, math.nan)
    zeros = torch.zeros_like(hinv_g)

    def result(x, case, lam=math.nan, nu=None, active=(), weights=None):
        nu = np.zeros(m) if nu is None else nu
        w = nan_m if weights is None else weights
        return CPOStepMulti(x, case, lam, nu, tuple(active), w, q, r, S, c)

    def tr_step() -> torch.Tensor:
        return math.sqrt(2.0 * delta / q) * hinv_g if q > _EPS else zeros

    diag = np.diag(S)
    live = [i for i in range(m) if diag[i] > s_tol]
    dead_violated = [i for i in range(m) if diag[i] <= s_tol and c[i] >= 0]

    def recovery(idx: list[int]) -> CPOStepMulti:
        violated = [i for i in idx if c[i] > 0]
        if not violated:
            return result(zeros, "recovery", nu=nan_m)
        w_live, _ = _minimax_weights(c[idx], S[np.ix_(idx, idx)], delta)
        w = np.zeros(m)
        w[idx] = w_live
        direction = hinv_B @ torch.from_numpy(w)
        norm = math.sqrt(max(float(w @ S @ w), 0.0))
        x = -math.sqrt(2.0 * delta) * direction / norm if norm > 0 else zeros
        return result(x, "recovery", nu=nan_m, weights=w)

    if dead_violated:
        return recovery(live)
    if not live:
        return result(tr_step(), "trpo")
    root = math.sqrt(2.0 * delta)
    if all(c[i] + root * math.sqrt(diag[i]) <= 0 for i in live):
        return result(tr_step(), "feasible")
    _, worst = _minimax_weights(c[live], S[np.ix_(live, live)], delta)
    if worst >= 0:
        return recovery(live)

    best: tuple[float, float, np.ndarray, tuple[int, ...]] | None = None
    for A in _subsets(live):
        ia = list(A)
        if ia:
            Saa = S[np.ix_(ia, ia)]
            si_r, si_c = _solve(Saa, r[ia]), _solve(Saa, c[ia])
            if si_r is None or si_c is None:
                continue
            num = q - r[ia] @ si_r
            den = 2.0 * delta - c[ia] @ si_c
        else:
            si_r = si_c = np.zeros(0)
            num, den = q, 2.0 * delta
        if num <= _EPS or den <= 0:
            continue
        lam = math.sqrt(num / den)
        nu = np.zeros(m)
        nu[ia] = si_r + lam * si_c
        if np.any(nu[ia] < 0):
            continue
        slack = c + (r - S @ nu) / lam  # c_j + b_j^T x at x = (H^-1 g - H^-1 B nu) / lambda
        others = [j for j in live if j not in A]
        if any(slack[j] > 1e-10 * (1.0 + abs(c[j])) for j in others):
            continue
        dual = (q - 2.0 * r @ nu + nu @ S @ nu) / (2.0 * lam) + lam * delta - c @ nu
        if best is None or dual < best[0]:
            best = (dual, lam, nu, A)
    if best is None:
        # Only reachable with g in the span of the binding cost gradients (nothing to gain
        # along the constraints; with more parameters than constraints this needs g ~ 0):
        # stay put, as the single-constraint step does.
        return result(zeros, "kl_only")
    _, lam, nu, A = best
    x = (hinv_g - hinv_B @ torch.from_numpy(nu)) / lam
    active = tuple(i for i in A if nu[i] > 0)
    return result(x, "both_active" if active else "kl_only", lam, nu, active)


# ------------------------------------------------------------------------------------------
# Line search
# ------------------------------------------------------------------------------------------


@dataclass
class LineSearchResult:
    """Outcome of :func:`backtracking_line_search`.

    Attributes:
        accepted: whether a point was accepted (else the parameters were restored).
        k: index of the accepted step (``beta**k`` times the full step); -1 if none.
        stats: the evaluation at the accepted point (or at the last tried point if none).
        tried: number of points evaluated.
    """

    accepted: bool
    k: int
    stats: Mapping[str, float]
    tried: int


def backtracking_line_search(
    set_params: Callable[[torch.Tensor], None],
    theta0: torch.Tensor,
    step: torch.Tensor,
    evaluate: Callable[[], Mapping[str, float]],
    accept: Callable[[Mapping[str, float]], bool],
    coeff: float,
    max_iters: int,
) -> LineSearchResult:
    """Try ``theta0 + coeff**k * step`` for k = 0..max_iters-1; keep the first accepted point.

    ``set_params(theta)`` installs parameters, ``evaluate()`` returns statistics of the installed
    parameters (e.g. KL, surrogate changes), ``accept(stats)`` decides. Non-finite statistics are
    rejected before ``accept`` is asked. If nothing is accepted, ``theta0`` is restored exactly.
    """
    stats: Mapping[str, float] = {}
    for k in range(max_iters):
        set_params(theta0 + (coeff**k) * step.to(theta0.dtype))
        stats = evaluate()
        if all(math.isfinite(float(v)) for v in stats.values()) and accept(stats):
            return LineSearchResult(True, k, stats, k + 1)
    set_params(theta0)
    return LineSearchResult(False, -1, stats, max_iters)

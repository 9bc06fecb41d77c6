"""Networks: the Gaussian MLP actor, the reward/cost critics (one batched module), and the
observation normaliser.

* :class:`GaussianActor` — ``a ~ N(mu(o), diag(exp(2 log_std)))`` with a *state-independent*
  ``log_std`` parameter. Log-probabilities and entropies are summed over action dimensions.
* :class:`Critics` — ``G`` value heads (reward first, then one or more costs) as ``G`` separate
  MLPs stored as stacked weights and evaluated with batched matrix products: one forward, one
  backward and one optimizer step for all of them. On CPU a critic update's time is mostly
  per-call overhead (docs/algorithms.md, section 8, throughput), so fusing the critics halves it.
* :class:`ObsNormalizer` — running mean/variance in float64 (Chan et al. parallel merge), part
  of the policy's state; updated only by explicit :meth:`ObsNormalizer.update` calls (the
  algorithms call it once per update), so evaluation never changes it. Its batch moments go
  through :func:`saferl.algos.dist.all_reduce_sum_`, so statistics are global under
  ``torch.distributed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from saferl.algos.dist import all_reduce_sum_

__all__ = ["ACTIVATIONS", "Critics", "GaussianActor", "ObsNormalizer", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
_LOG_2PI = math.log(2.0 * math.pi)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden_sizes: Sequence[int],
    activation: str = "tanh",
    output_gain: float = 1.0,
) -> nn.Sequential:
    """Plain MLP with orthogonal initialisation (hidden gain sqrt(2), zero biases)."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden_sizes]
    for i in range(len(hidden_sizes)):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.orthogonal_(lin.weight, gain=math.sqrt(2.0))
        nn.init.zeros_(lin.bias)
        layers += [lin, act()]
    out = nn.Linear(sizes[-1], out_dim)
    nn.init.orthogonal_(out.weight, gain=output_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy with an MLP mean and a state-independent log-std.

    Args:
        obs_dim, act_dim: sizes of the (normalised) observation and of the action.
        hidden_sizes: hidden widths (default 64x64).
        activation: ``tanh`` | ``relu`` | ``elu`` | ``gelu``.
        init_log_std: initial log standard deviation: one number for every action dimension,
            or one per dimension.
        output_gain: orthogonal gain of the mean layer (small: initial actions near 0).
        init_mean: initial bias of the mean layer, one value per action dimension (default
            zeros): where the policy starts in the action box.
        input_dims: read only the first ``input_dims`` observation dims (default: all); the
            rest (privileged, for the critics) cannot influence the action.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        init_log_std: float | Sequence[float] = -0.5,
        output_gain: float = 0.01,
        init_mean: Sequence[float] | None = None,
        input_dims: int | None = None,
    ) -> None:
        super().__init__()
        if input_dims is not None and not 0 < input_dims <= obs_dim:
            raise ValueError(f"input_dims: {input_dims} is not in 1..{obs_dim}")
        self.input_dims = obs_dim if input_dims is None else int(input_dims)
        self.mu = mlp(self.input_dims, act_dim, hidden_sizes, activation, output_gain)
        log_std = torch.as_tensor(init_log_std, dtype=torch.float32).reshape(-1)
        if log_std.numel() not in (1, act_dim):
            raise ValueError(
                f"init_log_std: the action has {act_dim} dimensions, got {log_std.numel()} "
                "values (give one, or one per dimension)"
            )
        self.log_std = nn.Parameter(log_std.expand(act_dim).clone())
        if init_mean is not None:
            bias = torch.as_tensor(init_mean, dtype=torch.float32).reshape(-1)
            if bias.numel() != act_dim:
                raise ValueError(
                    f"init_action_mean: the action has {act_dim} dimensions, got {bias.numel()} "
                    "values"
                )
            with torch.no_grad():
                self.mu[-1].bias.copy_(bias)

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The part of ``obs (B, obs_dim)`` the mean network reads."""
        return obs[..., : self.input_dims]

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs (B, obs_dim)`` -> ``(mean (B, act_dim), log_std (act_dim,))``."""
        return self.mu(self.inputs(obs)), self.log_std

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of ``actions (B, A)``, summed over action dims -> ``(B,)``."""
        z = (actions - mean) * torch.exp(-log_std)
        return -(0.5 * z * z + log_std + 0.5 * _LOG_2PI).sum(-1)

    @staticmethod
    def entropy(log_std: torch.Tensor) -> torch.Tensor:
        """Entropy of the Gaussian (scalar, summed over action dims; state-independent)."""
        return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum()

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (unclipped) sample and its log-probability for ``obs (B, obs_dim)``."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        actions = mean + noise * torch.exp(log_std)
        logp = -(0.5 * noise * noise + log_std + 0.5 * _LOG_2PI).sum(-1)
        return actions, logp


class Critics(nn.Module):
    """``G`` independent MLP value functions evaluated as one batched network.

    Head 0 is the reward critic, heads 1.. are cost critics (one for the combined cost, or one
    per constraint). Each head has its own weights; they only share the computation.

    Args:
        obs_dim: observation size.
        n_heads: number of value functions ``G``.
        hidden_sizes, activation: as for :func:`mlp`.
    """

    def __init__(
        self,
        obs_dim: int,
        n_heads: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.n_heads = int(n_heads)
        self.act = ACTIVATIONS[activation]()
        sizes = [obs_dim, *hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i in range(len(sizes) - 1):
            gain = 1.0 if i == len(sizes) - 2 else math.sqrt(2.0)
            w = torch.empty(self.n_heads, sizes[i], sizes[i + 1])
            for g in range(self.n_heads):
                # (out, in) orthogonal init as nn.Linear would do, stored transposed for bmm.
                nn.init.orthogonal_(w[g].T, gain=gain)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(self.n_heads, 1, sizes[i + 1])))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs (B, obs_dim)`` -> values ``(B, G)``."""
        h = obs.unsqueeze(0).expand(self.n_heads, *obs.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
        return h.squeeze(-1).T


class ObsNormalizer(nn.Module):
    """Running mean/variance observation normaliser (float64 statistics).

    ``normalize(x) = clip((x - mean) / sqrt(var + eps), -clip, clip)`` as float32. Before the
    first update the statistics are (0, 1): the identity up to clipping. With
    ``enabled=False`` it is the identity and never changes.

    Statistics change only in :meth:`update`; an evaluation that only calls :meth:`normalize`
    leaves them frozen.
    """

    def __init__(
        self, obs_dim: int, clip: float = 10.0, eps: float = 1e-8, enabled: bool = True
    ) -> None:
        super().__init__()
        self.enabled = bool(enabled)
        self.clip = float(clip)
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(obs_dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        # float32 copies used on the hot path; rebuilt after every change of the statistics.
        self.register_buffer("_shift", torch.zeros(obs_dim), persistent=False)
        self.register_buffer("_scale", torch.ones(obs_dim), persistent=False)

    def _refresh(self) -> None:
        self._shift.copy_(self.mean.float())
        self._scale.copy_(torch.rsqrt(self.var + self.eps).float())

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs (..., obs_dim)`` float32 -> normalised and clipped float32 of the same shape."""
        if not self.enabled:
            return obs
        return ((obs - self._shift) * self._scale).clamp_(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Merge the moments of a batch ``obs (B, obs_dim)`` (global over ranks) into the stats."""
        if not self.enabled:
            return
        x = obs.detach().reshape(-1, self.mean.numel()).to(self.mean.device, torch.float64)
        n = torch.tensor([float(x.shape[0])], dtype=torch.float64, device=x.device)
        moments = torch.cat([n, x.sum(0), (x * x).sum(0)])
        all_reduce_sum_(moments)  # the distributed hook: global batch moments
        d = self.mean.numel()
        n_b = moments[0]
        if n_b <= 0:
            return
        mean_b = moments[1 : 1 + d] / n_b
        var_b = (moments[1 + d :] / n_b - mean_b * mean_b).clamp_min(0.0)
        n_a = self.count
        tot = n_a + n_b
        delta = mean_b - self.mean
        new_mean = self.mean + delta * (n_b / tot)
        m2 = self.var * n_a + var_b * n_b + delta * delta * (n_a * n_b / tot)
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / tot)
        self.count.copy_(tot)
        self._refresh()

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

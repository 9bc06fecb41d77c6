"""The one place where algorithm statistics cross process boundaries.

Every reduction the algorithms make over data (advantage mean/std, the surrogate gradients g and
b, every Fisher-vector product, line-search KL and surrogates, J_c, observation-normaliser moments)
goes through these helpers. In a single process (the normal case, a world of size 1) they are
plain local reductions; when ``torch.distributed`` has been initialised they all-reduce, so that
distributed training uses the same math with no change.

Gradients of *local means* are combined as count-weighted averages, so ranks with different
batch sizes still give the gradient of the global mean.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_sum_",
    "global_mean",
    "global_mean_std",
    "global_sum",
    "is_distributed",
    "weighted_average_",
]


def is_distributed() -> bool:
    """True when a torch.distributed process group exists (and has more than one rank)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (no-op in a single process); returns ``t``."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def global_sum(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of all elements, element count) over ranks, both float64 scalars."""
    s = torch.stack(
        [values.detach().double().sum(), torch.tensor(float(values.numel()), dtype=torch.float64)]
    )
    all_reduce_sum_(s)
    return s[0], s[1]


def global_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of all elements of ``values`` over ranks (float64 scalar; 0 for no elements)."""
    total, count = global_sum(values)
    return total / count.clamp_min(1.0)


def global_mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of all elements over ranks, float64 scalars."""
    v = values.detach().double().reshape(-1)
    s = torch.stack([v.sum(), (v * v).sum(), torch.tensor(float(v.numel()), dtype=torch.float64)])
    all_reduce_sum_(s)
    n = s[2].clamp_min(1.0)
    mean = s[0] / n
    var = (s[1] / n - mean * mean).clamp_min(0.0)
    return mean, var.sqrt()


def weighted_average_(vec: torch.Tensor, count: int | float) -> torch.Tensor:
    """In place: ``vec`` (a local mean, e.g. a gradient) -> count-weighted mean over ranks.

    Args:
        vec: any tensor; on every rank the same shape.
        count: the number of samples the local mean was taken over.
    """
    if not is_distributed():
        return vec
    w = torch.tensor([float(count)], dtype=vec.dtype, device=vec.device)
    vec.mul_(w)
    dist.all_reduce(vec, op=dist.ReduceOp.SUM)
    dist.all_reduce(w, op=dist.ReduceOp.SUM)
    return vec.div_(w)

"""The one place where algorithm statistics cross process boundaries.

Every reduction the algorithms make over data (advantage mean/std, the surrogate gradients g and
b, every Fisher-vector product, line-search KL and surrogates, J_c, observation-normaliser moments)
goes through these helpers. In a single process (the normal case, a world of size 1) they are
plain local reductions; when ``torch.distributed`` has been initialised they all-reduce, so that
distributed training uses the same math with no change.

Gradients of *local means* are combined as count-weighted averages, so ranks with different
batch sizes still give the gradient of the global mean.

Samples are numbered globally: a rollout of ``T`` steps from ``N`` instances in all, of which this
rank holds instances ``offset .. offset + n - 1`` (:func:`instance_span`), has sample
``t * N + j`` for instance ``j`` at step ``t``, the order of one process holding all ``N``.
Random minibatches and subsamples are drawn over these global numbers from a generator in the
same state on every rank, and each rank keeps its own rows of them (:func:`local_rows`), so
N ranks take the same steps as one process with all instances.

With the NCCL backend, CPU tensors are reduced through the current CUDA device (NCCL reduces
CUDA tensors only); with gloo (or ``cpu:gloo,cuda:nccl``) they are reduced where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_",
    "all_reduce_sum_",
    "average_gradients_",
    "global_mean",
    "global_mean_std",
    "global_sum",
    "instance_span",
    "is_distributed",
    "local_rows",
    "weighted_average_",
]


def is_distributed() -> bool:
    """True when a torch.distributed process group exists (and has more than one rank)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _staging_device(t: torch.Tensor) -> torch.device | None:
    """Where ``t`` must be copied for the collective: the current CUDA device for a CPU tensor
    under a process group whose only backend is NCCL, else None (reduce in place)."""
    if t.device.type != "cpu":
        return None
    backend = str(dist.get_backend())
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return None


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``t`` over ranks in place with ``op`` (``sum``, ``max`` or ``min``); a no-op in a
    single process. Returns ``t``."""
    if not is_distributed():
        return t
    reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
    staging = _staging_device(t)
    if staging is None:
        dist.all_reduce(t, op=reduce_op)
    else:
        tmp = t.to(staging)
        dist.all_reduce(tmp, op=reduce_op)
        t.copy_(tmp)
    return t


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (no-op in a single process); returns ``t``."""
    return all_reduce_(t, "sum")


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
    # one collective: the weighted values and the weight travel together
    flat = torch.cat([vec.reshape(-1) * float(count), vec.new_tensor([float(count)])])
    all_reduce_(flat, "sum")
    vec.copy_((flat[:-1] / flat[-1]).reshape(vec.shape))
    return vec


def average_gradients_(params: Sequence[torch.Tensor], count: int | float) -> None:
    """In place: every parameter's ``.grad`` (the gradient of a local mean over ``count``
    samples) -> the gradient of the global mean, in one collective for all of them (what DDP's
    bucketed all-reduce does). A parameter without a gradient counts as a zero gradient.
    A no-op in a single process."""
    if not is_distributed():
        return
    params = [p for p in params]
    if not params:
        return
    ref = params[0]
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * float(count)
        for p in params
    ]
    parts.append(torch.tensor([float(count)], dtype=parts[0].dtype, device=ref.device))
    flat = torch.cat(parts)
    all_reduce_(flat, "sum")
    flat = flat[:-1] / flat[-1]
    offset = 0
    for p in params:
        n = p.numel()
        grad = flat[offset : offset + n].view_as(p)
        if p.grad is None:
            p.grad = grad.clone()
        else:
            p.grad.copy_(grad)
        offset += n


def instance_span(n_local: int) -> tuple[int, int]:
    """``(offset, total)``: the global index of this rank's first env instance and the number
    of instances over all ranks, ranks holding consecutive blocks in rank order. ``(0,
    n_local)`` in a single process."""
    if not is_distributed():
        return 0, int(n_local)
    counts = torch.zeros(dist.get_world_size(), dtype=torch.float64)
    counts[dist.get_rank()] = float(n_local)
    all_reduce_(counts, "sum")
    offset = int(counts[: dist.get_rank()].sum())
    return offset, int(counts.sum())


def local_rows(idx: torch.Tensor, n_local: int, offset: int, total: int) -> torch.Tensor:
    """This rank's rows among global sample numbers ``idx`` (1-D int64, any order), as indices
    into its own flattened ``(T * n_local)`` batch, in the order they appear in ``idx``.

    Sample ``t * total + j`` (instance ``j`` at step ``t``) is row ``t * n_local + j - offset``
    here when ``offset <= j < offset + n_local``; the others belong to other ranks.
    """
    if offset == 0 and n_local == total:
        return idx
    t = torch.div(idx, total, rounding_mode="floor")
    j = idx - t * total - offset
    keep = (j >= 0) & (j < n_local)
    return t[keep] * n_local + j[keep]

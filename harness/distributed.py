"""Data-parallel training with torch.distributed: the process group, the collectives the engine needs, and sharded
data loaders. With one process (no torchrun) every helper here is a no-op, so the single-process path is unchanged.

How a run uses it (harness/runner.py, harness/training.py, harness/evaluation.py):

* `torchrun --nproc_per_node N -m harness.cli run …` (or `benchmark run --nproc N`, harness/launch.py) starts N
  processes; `init_from_env` joins them into one group: NCCL for CUDA devices, gloo on CPU.
* `--batch-size` stays the global batch: each rank loads `batch_size / N` samples per step through a
  `DistributedSampler` whose shuffle seed (the epoch's data seed) is the same on every rank and whose `set_epoch` is
  called each epoch; augmentation and dropout draw from per-rank seeds (`rank_seed`).
* The model is wrapped in DistributedDataParallel after the method has bound the plain parameters by name, so DDP's
  gradient all-reduce has finished when the method adds its penalty gradient (`after_backward`).
* Everything a method or a hook decides on is made identical on every rank: the epoch loss SLR's conditions compare
  is the all-reduced mean, the Z/U/Lambda state is broadcast from rank 0 after each update, BN buffers are broadcast
  from rank 0 after each epoch, evaluation is sharded over the ranks and gathered, and its metrics come from rank 0.
* Only rank 0 writes (record, checkpoints, store, trackers, artifacts) and logs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from harness.errors import UserError

T = TypeVar("T")

# How long a rank waits in a collective for the others (e.g. while rank 0 alone writes artifacts) before failing.
COLLECTIVE_TIMEOUT = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank `rank` of `size` processes (size 1: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """For the record's provenance: the run is the same experiment at any world size, so this is not identity."""
        return {"world_size": self.size, "backend": self.backend}


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                     str(dist.get_backend()))
    return World()


def launched_world_size() -> int:
    """The world size torchrun (or `benchmark run --nproc`) started this process with; 1 without a launcher."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init_from_env(device: torch.device) -> World:
    """Join the job's process group when started by a launcher with more than one process (idempotent).

    Returns the World; `device` is the run's resolved device (a CUDA run uses NCCL and the GPU LOCAL_RANK)."""
    if launched_world_size() <= 1 or world().active:
        return world()
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed; run with --nproc 1")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UserError(f"data-parallel training supports CUDA (NCCL) and CPU (gloo) devices, not {device.type}")
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return world()


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: under several processes, CUDA runs use GPU LOCAL_RANK."""
    if launched_world_size() <= 1 or device.type != "cuda":
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.index is not None and device.index != local:
        raise UserError(f"--device {device} names one GPU, but under torchrun each rank uses GPU LOCAL_RANK: "
                        "pass --device cuda (or auto)")
    if local >= torch.cuda.device_count():
        raise UserError(f"rank with LOCAL_RANK {local} has no GPU (this node has {torch.cuda.device_count()}): "
                        "lower --nproc / --nproc_per_node")
    return torch.device("cuda", local)


def rank_seed(seed: int, rank: int | None = None) -> int:
    """The seed of one rank's own random draws (augmentation, dropout) derived from a shared seed; rank 0 keeps
    `seed` itself, so a one-process run draws exactly what it always drew."""
    rank = world().rank if rank is None else rank
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:rank{rank}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---- collectives (no-ops with one process) -----------------------------------------------------------------------------
def _comm_device(like: torch.Tensor | None = None) -> torch.device:
    if world().backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if like is None else like.device


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of `t` over all ranks (a new tensor; `t` is untouched)."""
    if not world().active:
        return t
    buf = t.detach().clone().to(_comm_device(t))
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def agree(ok: bool) -> bool:
    """True only when `ok` is true on every rank: one rank's refusal becomes every rank's, so none waits forever."""
    if not world().active:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank (picklable objects; small ones: metrics, scalars, logs)."""
    if not world().active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_comm_device() if world().backend == "nccl" else None)
    return box[0]


def same_everywhere(value: T, what: str) -> T:
    """`value` when every rank computed the same one (a file found, a phase to resume); else one line on every rank.
    Multi-node jobs need the run folder on a filesystem all nodes share: a rank that cannot see rank 0's files would
    otherwise take another branch and wait forever in a collective."""
    if not world().active:
        return value
    ok = agree(broadcast_object(value) == value)
    if not ok:
        raise UserError(f"the ranks disagree on {what}: --out (and PRUNEBENCH_CACHE) must be on a filesystem "
                        "every node of the job shares")
    return value


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not world().active:
        return [obj]
    out: list[Any] = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite each tensor in place with rank 0's values."""
    if not world().active:
        return
    for t in tensors:
        if t.device.type == _comm_device(t).type:
            dist.broadcast(t, src=0)
        else:
            buf = t.to(_comm_device(t))
            dist.broadcast(buf, src=0)
            t.copy_(buf)


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) on every rank: DDP broadcasts them before each forward, so after
    the last step of an epoch every rank holds its own; evaluation and checkpoints need one set."""
    broadcast_(list(model.buffers()))


# What a collective raises when a peer process died: NCCL's errors are DistError subclasses; gloo raises a plain
# RuntimeError from its TCP transport ("Connection reset by peer", "Connection closed by peer").
PEER_LOST_SIGNS = ("Connection reset by peer", "Connection closed by peer", "gloo/transport", "Broken pipe")


def lost_peer(exc: BaseException) -> bool:
    """Whether `exc` says another process of this job is gone (not a bug of this one)."""
    if not world().active:
        return False
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError)
                                               and any(s in str(exc) for s in PEER_LOST_SIGNS))


def barrier() -> None:
    if world().active:
        dist.barrier()


# ---- DDP wrapping and data sharding --------------------------------------------------------------------------------------
def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (whose parameters the method has already bound by name); the model
    itself with one process. DDP broadcasts rank 0's parameters and buffers at construction."""
    if not world().active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=device.index if ids else None)


def _rebuild(loader: DataLoader, sampler: Sampler, batch_size: int) -> DataLoader:
    return DataLoader(loader.dataset, batch_size=batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False)


def shard_train_loader(loader: Iterable, seed: int, epoch: int) -> Iterable:
    """This rank's part of an epoch: a DistributedSampler (same `seed` on every rank, `set_epoch(epoch)`) and the
    per-rank batch (global batch / world size). Every rank gets the same number of batches (the sampler pads the last
    round with repeated samples, as DistributedSampler does), so collectives line up."""
    w = world()
    if not w.active:
        return loader
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise UserError("data-parallel training needs the task's train_loader to be a torch DataLoader with a "
                        "batch_size; run this task with --nproc 1")
    if loader.batch_size % w.size:
        raise UserError(f"--batch-size {loader.batch_size} is the global batch and must be divisible by the "
                        f"{w.size} processes")
    sampler = DistributedSampler(loader.dataset, num_replicas=w.size, rank=w.rank,
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return _rebuild(loader, sampler, loader.batch_size // w.size)


class ContiguousShard(Sampler[int]):
    """Rank r's contiguous slice of range(n) with no padding: concatenated in rank order, the shards are the dataset
    in order, each sample exactly once (what TuSimple's and COCO's metrics need)."""

    def __init__(self, n: int, rank: int, size: int):
        self.start, self.stop = n * rank // size, n * (rank + 1) // size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def shard_eval_loader(loader: Iterable) -> Iterable | None:
    """This rank's contiguous slice of an evaluation loader; None when it cannot be sharded (not a sequential
    DataLoader over a sized dataset): then every rank evaluates all of it."""
    w = world()
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return None
    try:
        n = len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return None
    return _rebuild(loader, ContiguousShard(n, w.rank, w.size), loader.batch_size)


_LOCAL_ONLY = False


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Code that runs on rank 0 alone (artifacts, prediction files) evaluates without collectives."""
    global _LOCAL_ONLY
    before, _LOCAL_ONLY = _LOCAL_ONLY, True
    try:
        yield
    finally:
        _LOCAL_ONLY = before


def collective() -> bool:
    """True when evaluation should be split over the ranks (several processes, not inside `local_only`)."""
    return world().active and not _LOCAL_ONLY

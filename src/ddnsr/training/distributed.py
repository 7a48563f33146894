"""Several training processes (``torchrun --nproc_per_node N``), or one.

Every rank draws its own batch of ``batch_size`` crops (a disjoint part of the data stream); the
per-network gradients are averaged over the ranks (what DistributedDataParallel does; done explicitly
because each network's gradient comes from ``torch.autograd.grad`` of its own loss), so the effective
batch is N x batch_size at the same learning rate. Only rank 0 writes anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ddnsr.files import atomic_write
from ddnsr.inference.device import resolve_device
from ddnsr.training.losses import Networks

__all__ = ["Processes", "weights_checksum"]


@dataclass
class Processes:
    """This process's place in the run: its device, its rank and the number of ranks."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str) -> Processes:
        """Resolve ``device`` (``auto``: the ``LOCAL_RANK`` GPU under torchrun) and join torchrun's group."""
        world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
        dev = resolve_device(device)
        if dev.type == "cuda" and dev.index is None and world > 1:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % max(torch.cuda.device_count(), 1))
        if world > 1 and not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":  # fixed crop sizes: let cuDNN pick its fastest kernels
            torch.backends.cudnn.benchmark = True
        return cls(dev, rank, world)

    def broadcast_weights(self, nets: Networks) -> None:
        """Give every rank rank 0's weights."""
        if self.world > 1:
            for net in nets.trained().values():
                for t in net.state_dict().values():
                    dist.broadcast(t, 0)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (so all ranks fit the same schedule and stop together)."""
        if self.world == 1:
            return value
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.broadcast(t, 0)
        return int(t.item())

    def average_gradients(self, grads: dict[str, list[torch.Tensor | None]]) -> None:
        """Replace each network's gradients by their mean over the ranks (one all-reduce per network)."""
        if self.world == 1:
            return
        for per_net in grads.values():
            present = [g for g in per_net if g is not None]
            if not present:
                continue
            flat = torch.cat([g.reshape(-1) for g in present])
            dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for g in present:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def check_agreement(self, run_dir: Path, nets: Networks) -> None:
        """Gather every rank's weight checksum; rank 0 writes them to ``ranks.json``; disagreement is a bug."""
        if self.world == 1:
            return
        mine = torch.tensor([weights_checksum(nets)], dtype=torch.float64)
        gathered = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        sums = [float(g.item()) for g in gathered]
        if self.main:
            atomic_write(run_dir / "ranks.json", json.dumps({"world_size": self.world, "checksums": sums}) + "\n")
        if len(set(sums)) != 1:
            raise RuntimeError(f"the ranks' weights differ after training: {sums}")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def weights_checksum(nets: Networks) -> float:
    """A float64 checksum of every trained weight (sum of values and of squares), for comparing ranks."""
    total = torch.zeros((), dtype=torch.float64)
    for net in nets.trained().values():
        for t in net.state_dict().values():
            v = t.detach().double().cpu()
            total += v.sum() + (v * v).sum() * 1e-3
    return float(total)

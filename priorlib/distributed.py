"""Data parallelism without a framework: ``torchrun`` / ``accelerate launch`` set RANK and WORLD_SIZE,
each rank takes its share of every global batch, and gradients are summed with ``all_reduce``.

    accelerate launch --num_processes 2 -m priorlib.compendium.cli train ... --batch-size 16   # 16 = global batch

Rank 0 alone writes the run folder and evaluates; the result equals one process with the same
global batch up to the order of floating-point sums.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "cpu") -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def shard(self, indices: list[int]) -> list[int]:
        if len(indices) % self.world:
            raise ValueError(f"global batch of {len(indices)} does not split over {self.world} processes")
        return indices[self.rank:: self.world]

    def sum(self, value: float | int) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t)

    def sum_grads(self, params) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

"""Seconds per fine-tuning step of the unfrozen trunk tail, fp32 against bfloat16 autocast, per unfreeze depth.

``python benchmarks/bench_finetune_step.py [--blocks 2,3] [--batch 64] [--rounds 3] [--size 320]``

A step here is what :func:`training.finetune.finetune` does per batch of photos: the last N blocks forward from
their cached input, region pooling, the projection, a loss, backward. The input is random (timing only). Prints
one row per (blocks, dtype) with the median of ``--rounds`` steps after one warm-up step, and the training time a
full default run (3,036 brands x 2 photos, 15 epochs, 128 photos + 128 references per step) would take at that
speed, so the cost of unfreezing one more block can be judged before spending an hour on it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from detector.embedder import create_embedder
from training.finetune import TrunkTail


def _input_shape(embedder, tail: TrunkTail, size: int) -> tuple[int, int, int]:
    """(C, h, w) of the cached input of the tail's first block for a ``size``-pixel photo."""
    trunk = embedder.model.visual.trunk
    with torch.inference_mode():
        x = trunk.bn1(trunk.conv_stem(torch.zeros(1, 3, size, size)))
        for block in tail.blocks.blocks[: tail.start]:
            x = block(x)
    return tuple(x.shape[1:])


def step_seconds(embedder, n_blocks: int, batch: int, size: int, bf16: bool, rounds: int) -> float:
    """Median wall time of one forward + backward step of the last ``n_blocks`` blocks and the projection."""
    tail = TrunkTail(embedder, n_blocks)
    tail.eval()
    head = embedder.model.visual.head.float()
    params = [p for i in range(tail.start, len(tail.blocks.blocks)) for p in tail.blocks.blocks[i].parameters()]
    params += list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    x = torch.randn(batch, *_input_shape(embedder, tail, size)).to(torch.float16)
    times = []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            regions = embedder.pool_regions(tail(x))
            z = head(regions)
        loss = torch.nn.functional.normalize(z.float(), dim=-1).sum(dim=1).logsumexp(dim=-1).mean()
        loss.backward()
        for p in params:
            p.grad = None
        if r:  # the first step warms up kernels and caches
            times.append(time.perf_counter() - t0)
    for p in params:
        p.requires_grad_(False)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", default="2,3", help="unfreeze depths to time (comma-separated)")
    parser.add_argument("--batch", type=int, default=64, help="photos per timed step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=320, help="photo input side")
    args = parser.parse_args(argv)
    embedder = create_embedder("effnet-lite0-minilm")
    steps_full_run = 15 * (3036 // 128)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size} px")
    print(f"{'blocks':>6} {'dtype':>9} {'s/step':>8} {'img/s':>7} {'full run (min)':>15}")
    for n in (int(b) for b in args.blocks.split(",")):
        for bf16 in (False, True):
            s = step_seconds(embedder, n, args.batch, args.size, bf16, args.rounds)
            # a full-run step embeds 128 photos and 128 references (references: whole-image pooling, same cost)
            full_min = steps_full_run * s * (256 / args.batch) / 60
            print(f"{n:>6} {'bfloat16' if bf16 else 'float32':>9} {s:>8.2f} {args.batch / s:>7.1f} {full_min:>15.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

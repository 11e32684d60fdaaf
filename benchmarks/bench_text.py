"""Latency of title -> brand matching against every simple-icons brand (prints figures; asserts nothing).

    python benchmarks/bench_text.py
"""

from __future__ import annotations

import statistics
import time

import simple_icons_pack as sip

from detector.text import BrandTextMatcher, replica_terms

TITLES = [
    "N1ke Air running shoe replica 1:1", "Genuine Adidas Originals hoodie size M", "case for iPhone 15 clear",
    "G u c c i belt AAA quality", "Stainless steel water bottle 750ml", "Sаmsung Galaxy buds (unused)",
    "Vintage leather wallet", "Louis Vuiton speedy 30 mirror quality", "LEGO compatible building bricks",
]


def main() -> None:
    icons = [v for k, v in vars(sip).items() if k.startswith("SI_")]
    t0 = time.perf_counter()
    matcher = BrandTextMatcher([(i, [icon.title]) for i, icon in enumerate(icons)])
    build_ms = 1000 * (time.perf_counter() - t0)
    latencies = []
    for _ in range(50):
        for title in TITLES:
            t = time.perf_counter()
            matcher.match(title)
            replica_terms(title)
            latencies.append(1000 * (time.perf_counter() - t))
    latencies.sort()
    print(f"brands: {len(icons)}  build: {build_ms:.1f} ms")
    print(f"match+replica per title: mean {statistics.mean(latencies):.3f} ms  "
          f"p50 {latencies[len(latencies) // 2]:.3f} ms  p95 {latencies[int(0.95 * len(latencies))]:.3f} ms")


if __name__ == "__main__":
    main()

"""Decode speed of Label Studio brush RLE: lsflow's numpy reader against the SDK's `decode_rle`.

    .venv/bin/python benchmarks/brush_rle.py [--repeat N]

Masks are 1920x1080 and encoded with the SDK's own encoder (`brush.mask2rle`, which writes each
alpha value into all four RGBA channels as the Label Studio editor does). Each decoder runs on the
same bytes; the outputs are compared for equality before any time is reported.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_studio_sdk.converter import brush

from lsflow.core.geometry.rle import decode_brush_rle

WIDTH, HEIGHT = 1920, 1080


def masks() -> dict[str, np.ndarray]:
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    ellipse = ((cols - 900) / 600) ** 2 + ((rows - 520) / 380) ** 2
    road = np.where(ellipse < 1, 255, 0).astype(np.uint8)
    road[430:610, 800:1010] = 0  # a hole: an island in the road
    # Soft edges, as a brush stroke's anti-aliasing leaves them: a band of partial alpha values.
    soft = np.clip((1.0 - ellipse) * 2550, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(7)
    spots = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for x, y, r in zip(rng.integers(0, WIDTH, 300), rng.integers(0, HEIGHT, 300), rng.integers(4, 40, 300)):
        spots[((cols - x) ** 2 + (rows - y) ** 2) < r * r] = 255
    speckle = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    speckle[300:500, 600:1000] = (rng.random((200, 400)) < 0.5) * 255  # worst case: no runs at all
    return {"filled region with a hole": road, "soft-edged region": soft, "300 spots": spots,
            "speckled 400x200 patch": speckle}


def timed(decode, rle) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = decode(rle)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per decoder; the fastest counts")
    args = parser.parse_args()
    print(f"{'mask (1920x1080)':<28} {'RLE bytes':>10} {'SDK ms':>9} {'lsflow ms':>10} {'speed-up':>9}")
    for name, mask in masks().items():
        rle = brush.mask2rle(mask)
        sdk_time = ours_time = float("inf")
        # Interleaved, fastest of each: on a shared machine both decoders see the same load.
        for _ in range(args.repeat):
            elapsed, expected = timed(brush.decode_rle, rle)
            sdk_time = min(sdk_time, elapsed)
            elapsed, ours = timed(decode_brush_rle, rle)
            ours_time = min(ours_time, elapsed)
            if not np.array_equal(expected, ours):
                raise SystemExit(f"{name}: the decoders disagree")
        print(f"{name:<28} {len(rle):>10} {sdk_time * 1000:>9.1f} {ours_time * 1000:>10.1f} "
              f"{sdk_time / ours_time:>8.1f}x")


if __name__ == "__main__":
    main()

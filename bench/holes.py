"""Triangulating faces with many holes, and long rings: the time `cim.geometry.triangulate` takes
(what the ingest calls) against earcut's alone (what it called for every face before issue 13).
Each run is a fresh process, stopped after `--timeout` seconds ("> N s"). Prints the CPU seconds
of each; the holed faces are those of tests/ingest/test_hostile_inputs.py (a square with one tiny
square hole at a random place in each cell of a grid). Not a test: it passes or fails on nothing.

    python bench/holes.py                            # 1k, 4k, 16k, 32k holes; 100k, 250k rings
    python bench/holes.py --holes 8000 32000 --timeout 600
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def holed_face(holes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (3D, a tilted plane) and ring sizes of a square face with `holes` holes."""
    rng = np.random.default_rng(seed)
    k = int(np.ceil(np.sqrt(holes)))
    cell = np.arange(holes)
    corner = np.column_stack((cell % k, cell // k)) * 10.0 + 1 + rng.random((holes, 2)) * 7
    square = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=np.float64)
    rings = [np.array([[0, 0], [10 * k, 0], [10 * k, 10 * k], [0, 10 * k]], dtype=np.float64)]
    rings.append((corner[:, None, :] + square[None]).reshape(-1, 2))
    xy = np.vstack(rings)
    return np.column_stack((xy[:, 0], xy[:, 1] * 0.8, xy[:, 1] * 0.6)), np.full(holes + 1, 4)


def round_face(vertices: int, lobes: int) -> tuple[np.ndarray, np.ndarray]:
    """One ring: a circle (no lobes) or a star of `lobes` lobes."""
    angle = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = 50 * (1 + 0.3 * np.sin(angle * lobes)) if lobes else np.full(vertices, 50.0)
    xy = np.column_stack((radius * np.cos(angle), radius * np.sin(angle)))
    return np.column_stack((xy, np.zeros(vertices))), np.array([vertices])


def _measure(kind: str, size: int, how: str) -> None:
    """In the child process: build the face, triangulate it, print CPU seconds and triangles."""
    import time

    import mapbox_earcut

    from cim.geometry import MAX_SURFACE_VERTICES, triangulate

    if kind == "holes":
        points, sizes = holed_face(size)
    else:
        points, sizes = round_face(size, 0 if kind == "circle" else 50)
    started = time.process_time()
    if how == "earcut":
        ends = np.cumsum(sizes).astype(np.uint32)
        triangles = len(mapbox_earcut.triangulate_float64(points[:, :2], ends)) // 3
    elif len(points) > MAX_SURFACE_VERTICES:
        print(f"beyond the limit of {MAX_SURFACE_VERTICES:,} vertices: refused at ingest")
        return
    else:
        triangles = len(triangulate(points, sizes, np.array([len(sizes)]))[0])
    print(f"{time.process_time() - started:.3f} {triangles}")


def _run(kind: str, size: int, how: str, timeout: float) -> str:
    command = [sys.executable, __file__, "--child", kind, str(size), how]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} s"
    if done.returncode != 0:
        return "failed: " + done.stderr.strip().splitlines()[-1]
    if done.stdout.startswith("beyond"):
        return "refused (over the limit)"
    seconds, triangles = done.stdout.split()
    return f"{float(seconds):.2f} s ({int(triangles):,} triangles)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holes", type=int, nargs="*", default=[1000, 4000, 16000, 32000])
    parser.add_argument("--rings", type=int, nargs="*", default=[100_000, 250_000])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child[0], int(args.child[1]), args.child[2])
        return
    cases = [("holes", n) for n in args.holes]
    cases += [(kind, n) for n in args.rings for kind in ("circle", "star")]
    print(f"CPU seconds per face, {os.cpu_count()} CPUs (earcut alone: before issue 13)")
    print(f"{'face':<24} {'earcut alone':>32} {'triangulate (now)':>32}")
    for kind, n in cases:
        label = f"{n:,} holes" if kind == "holes" else f"{kind}, {n:,} vertices"
        before = _run(kind, n, "earcut", args.timeout)
        after = _run(kind, n, "now", args.timeout)
        print(f"{label:<24} {before:>32} {after:>32}", flush=True)


if __name__ == "__main__":
    main()

"""What each extra person costs the MediaPipe front end: milliseconds per frame with 1, 2 and 4 people in view.

The frame is a 1096x684 canvas of four 548x342 panels; 1, 2 or 4 of them hold the real footballer photo
(assets/messi5.jpg), the rest stay grey, so the image size (and so the person detector's cost) is the same for
every count. Each front end runs the same frame repeatedly (after warm-up calls that let it find everyone), as
on a video of people standing still: person detector per its schedule plus one landmark run per person.

  python benchmarks/benchmark_people_cost.py [--calls 30] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))


def people_canvas(count: int) -> np.ndarray:
    """A (684, 1096, 3) RGB canvas with `count` (1..4) copies of the footballer photo, grey elsewhere."""
    import cv2

    bgr = cv2.imread(str(ASSETS / "messi5.jpg"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"missing {ASSETS / 'messi5.jpg'} (run scripts/fetch_assets.sh)")
    panel = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = panel.shape[:2]
    canvas = np.full((2 * h, 2 * w, 3), 128, np.uint8)
    for i in range(count):
        y, x = divmod(i, 2)
        canvas[y * h:(y + 1) * h, x * w:(x + 1) * w] = panel
    return canvas


def time_front_end(front, image: np.ndarray, calls: int, warmup: int = 6) -> tuple[float, float, int]:  # noqa: ANN001
    """(median ms, mean ms, people found in the last call) of `calls` detect() calls after `warmup` calls."""
    for _ in range(warmup):
        front.detect(image, None)
    times = []
    found = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        found = len(front.detect(image, None))
        times.append(time.perf_counter() - t0)
    ms = 1e3 * np.asarray(times)
    return float(np.median(ms)), float(ms.mean()), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    from petr_ros.frontends.mediapipe import BlazePosePersonDetector, MediaPipeFrontEnd

    canvases = {n: people_canvas(n) for n in args.counts}
    detector = BlazePosePersonDetector()
    try:
        view = detector.views(*canvases[args.counts[0]].shape[:2])[0]
        ms, _, _ = time_front_end(type("D", (), {"detect": lambda self, im, b: detector.detect(im, view)})(),
                                  canvases[args.counts[0]], args.calls)
        print(f"person detector alone, one 224x224 view of the {canvases[args.counts[0]].shape[1]}x"
              f"{canvases[args.counts[0]].shape[0]} frame: {ms:.1f} ms")
    finally:
        detector.close()
    configs = [("hog", {"detector": "hog"})]
    configs += [(f"blazepose workers={w}", {"detector": "blazepose", "workers": w}) for w in args.workers]
    print(f"{'front end':24s} " + " ".join(f"{n} people (ms, found)".rjust(22) for n in args.counts)
          + "   ms per extra person")
    for label, options in configs:
        front = MediaPipeFrontEnd(**options)
        row = {}
        try:
            for n in args.counts:
                front.reset()
                row[n] = time_front_end(front, canvases[n], args.calls)
        finally:
            front.close()
        counts = sorted(row)
        slope = np.polyfit(counts, [row[n][0] for n in counts], 1)[0] if len(counts) > 1 else float("nan")
        cells = " ".join(f"{row[n][0]:8.1f} ms, {row[n][2]} found".rjust(22) for n in counts)
        print(f"{label:24s} {cells}   {slope:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ProcessingStats`: thread-safe counters, rates over a sliding window and latency percentiles of a frame
stream (the node's /diagnostics values). Pure Python + numpy (no ROS); the clock is injectable for tests."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class ProcessingStats:
    """Counts frames received, processed, dropped (stale: replaced before processing; invalid: undecodable),
    failed, and people rejected by reason; keeps the last `latency_samples` latencies and stage times."""

    def __init__(self, window_s: float = 5.0, latency_samples: int = 500, rejection_reasons: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s!r}")
        self._lock = threading.Lock()
        self._clock = clock
        self.window_s = float(window_s)
        self._received: deque[float] = deque()
        self._processed: deque[float] = deque()
        self._latency: deque[float] = deque(maxlen=latency_samples)
        self._inference: deque[float] = deque(maxlen=latency_samples)
        self._post: deque[float] = deque(maxlen=latency_samples)
        self._stages: dict[str, deque[float]] = {}
        self._samples = latency_samples
        self.received = self.processed = self.dropped_stale = self.dropped_invalid = self.errors = 0
        self.persons = 0
        self.rejected: dict[str, int] = dict.fromkeys(rejection_reasons, 0)  # reported from the start

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] < now - self.window_s:
            q.popleft()

    def on_received(self) -> None:
        with self._lock:
            now = self._clock()
            self.received += 1
            self._received.append(now)
            self._trim(self._received, now)

    def on_invalid(self) -> None:
        with self._lock:
            self.dropped_invalid += 1

    def on_stale(self) -> None:
        with self._lock:
            self.dropped_stale += 1

    def on_error(self) -> None:
        with self._lock:
            self.errors += 1

    def on_processed(self, latency_s: float, persons: int, inference_s: float, post_s: float,
                     rejected: Mapping[str, int] | None = None, stages_s: Mapping[str, float] | None = None) -> None:
        """One frame done: `latency_s` from arrival to published, `inference_s` in the model, `post_s` the rest
        of the work (tracking ... publishing); `rejected`: people rejected in it, by reason; `stages_s`: seconds
        per pipeline stage."""
        with self._lock:
            now = self._clock()
            self.processed += 1
            self.persons = persons
            self._processed.append(now)
            self._trim(self._processed, now)
            self._latency.append(latency_s)
            self._inference.append(inference_s)
            self._post.append(post_s)
            for reason, n in (rejected or {}).items():
                self.rejected[reason] = self.rejected.get(reason, 0) + int(n)
            for stage, seconds in (stages_s or {}).items():
                self._stages.setdefault(stage, deque(maxlen=self._samples)).append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """The values for /diagnostics: rates (Hz) over the window, totals, latency and stage times (ms)."""
        with self._lock:
            now = self._clock()
            self._trim(self._received, now)
            self._trim(self._processed, now)
            lat = np.array(self._latency) * 1e3 if self._latency else np.array([np.nan])
            inf = np.array(self._inference) * 1e3 if self._inference else np.array([np.nan])
            values: dict[str, Any] = {
                "input_rate_hz": len(self._received) / self.window_s,
                "processed_rate_hz": len(self._processed) / self.window_s,
                "received": self.received,
                "processed": self.processed,
                "dropped_stale": self.dropped_stale,
                "dropped_invalid": self.dropped_invalid,
                "errors": self.errors,
                "latency_p50_ms": float(np.percentile(lat, 50)),
                "latency_p95_ms": float(np.percentile(lat, 95)),
                "inference_p50_ms": float(np.percentile(inf, 50)),
                "inference_mean_ms": float(np.mean(inf)),
                # tracking, smoothing, placement, message building and publishing: the node's own cost per frame
                "postprocess_mean_ms": float(np.mean(self._post) * 1e3) if self._post else float("nan"),
                "persons": self.persons,
            }
            for reason in sorted(self.rejected):
                values[f"rejected_{reason}"] = self.rejected[reason]
            for stage, samples in self._stages.items():
                values[f"stage_{stage}_mean_ms"] = float(np.mean(samples) * 1e3)
            return values

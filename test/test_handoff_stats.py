"""The node's pure helpers without DDS: the one-slot hand-off between the image callback and the worker, and the
processing statistics behind /diagnostics (a fake clock makes the rates exact)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from petr_ros.handoff import LatestSlot
from petr_ros.stats import ProcessingStats


def test_a_newer_item_replaces_the_pending_one() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False  # nothing was pending
    assert slot.put(2) is True  # 1 dropped
    assert slot.put(3) is True
    assert slot.get(timeout=0.0) == 3  # the freshest
    assert slot.get(timeout=0.0) is None  # empty after a get


def test_get_waits_for_a_producer_in_another_thread() -> None:
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("frame",)).start()
    t0 = time.monotonic()
    assert slot.get(timeout=5.0) == "frame"
    assert time.monotonic() - t0 < 4.0  # woken by put, not by the timeout
    t0 = time.monotonic()
    assert slot.get(timeout=0.05) is None  # nothing comes: back after the timeout
    assert time.monotonic() - t0 >= 0.04


def test_close_wakes_the_consumer_and_drops_what_is_pending() -> None:
    slot: LatestSlot[int] = LatestSlot()
    slot.put(1)
    slot.close()
    assert slot.closed and slot.get(timeout=0.0) is None
    assert slot.put(2) is False and slot.get(timeout=0.0) is None  # ignored once closed
    waiting: LatestSlot[int] = LatestSlot()
    got: list[int | None] = []
    worker = threading.Thread(target=lambda: got.append(waiting.get(timeout=10.0)))
    worker.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    waiting.close()
    worker.join(5.0)
    assert not worker.is_alive() and got == [None] and time.monotonic() - t0 < 4.0


def test_many_producers_one_consumer_every_item_is_taken_or_counted_dropped() -> None:
    slot: LatestSlot[int] = LatestSlot()
    dropped = [0]
    taken: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def produce(base: int) -> None:
        for i in range(2000):
            if slot.put(base + i):
                with lock:
                    dropped[0] += 1

    def consume() -> None:
        while not done.is_set() or (item := slot.get(0.0)) is not None:
            item = slot.get(0.01)
            if item is not None:
                taken.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(k * 10_000,)) for k in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    done.set()
    consumer.join(10.0)
    leftover = slot.get(0.0)
    assert len(taken) + dropped[0] + (leftover is not None) == 4 * 2000
    assert len(set(taken)) == len(taken)  # no item handed out twice


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_over_the_window_counts_and_percentiles() -> None:
    clock = FakeClock()
    stats = ProcessingStats(window_s=2.0, rejection_reasons=("non_finite", "low_score"), clock=clock)
    empty = stats.snapshot()
    assert empty["input_rate_hz"] == 0 and empty["processed"] == 0
    assert empty["rejected_low_score"] == 0 and empty["rejected_non_finite"] == 0  # reported from the start
    assert np.isnan(empty["latency_p50_ms"]) and np.isnan(empty["postprocess_mean_ms"])
    for i in range(40):  # 10 Hz in, every second frame processed, for 4 s
        clock.now += 0.1
        stats.on_received()
        if i % 2:
            stats.on_processed(latency_s=0.01 * (i % 10 + 1), persons=2, inference_s=0.05, post_s=0.002,
                               rejected={"low_score": 1}, stages_s={"estimate": 0.05, "place": 0.001})
        else:
            stats.on_stale()
    stats.on_invalid()
    stats.on_error()
    s = stats.snapshot()
    assert s["input_rate_hz"] == pytest.approx(10.0, abs=0.5)  # the last 2 s only
    assert s["processed_rate_hz"] == pytest.approx(5.0, abs=0.5)
    assert (s["received"], s["processed"], s["dropped_stale"], s["dropped_invalid"], s["errors"]) == (40, 20, 20, 1, 1)
    assert s["persons"] == 2 and s["rejected_low_score"] == 20 and s["rejected_non_finite"] == 0
    assert s["inference_mean_ms"] == pytest.approx(50.0) and s["postprocess_mean_ms"] == pytest.approx(2.0)
    assert s["stage_estimate_mean_ms"] == pytest.approx(50.0) and s["stage_place_mean_ms"] == pytest.approx(1.0)
    assert 20.0 <= s["latency_p50_ms"] <= s["latency_p95_ms"] <= 100.0
    clock.now += 10.0  # nothing for longer than the window: the rates fall to zero, the totals stay
    s = stats.snapshot()
    assert s["input_rate_hz"] == 0 and s["processed_rate_hz"] == 0 and s["received"] == 40
    with pytest.raises(ValueError, match="window_s"):
        ProcessingStats(window_s=0.0)

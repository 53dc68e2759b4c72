"""Backpressure: images at 100 Hz for 10 s into a node whose model is slow (HRNet-W32 with random weights on the
CPU): memory stays bounded, the worker runs back to back (processed rate = model rate), older frames are dropped
and counted, and latency stays about one inference (no queue builds up)."""

from __future__ import annotations

import time

import numpy as np
from conftest import diagnostics_values, image_msg, messi_rgb
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

RATE_HZ = 100.0
DURATION_S = 10.0


def test_100hz_into_a_slow_model(start_node, probe, lifter_checkpoint, hrnet_weights) -> None:
    node = start_node({"lifter_checkpoint": lifter_checkpoint, "backend": "hrnet", "hrnet_weights": hrnet_weights,
                       "torch_threads": 1, "diagnostics_period": 0.5, "min_person_score": 0.0})
    # Half size (274x171, 140 KB a message): well inside Fast DDS's default shared-memory segment, so the test
    # measures the node's hand-off rather than UDP fragment loss of full-size raw images (issue 11, item 2).
    rgb = np.ascontiguousarray(messi_rgb()[::2, ::2])
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    pub = probe.node.create_publisher(Image, "image", 10)
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 120), f"node never subscribed:\n{node.log()}"
    assert probe.spin_until(lambda: bool(diagnostics_values(diags)), 10), node.log()

    msgs = [image_msg(rgb, 0)]  # one buffer, new stamps: the publisher's own cost stays small
    rss: list[float] = []
    start_values = diagnostics_values(diags)
    t0 = time.monotonic()
    sent = 0
    next_rss = t0
    while (now := time.monotonic()) < t0 + DURATION_S:
        if now >= t0 + sent / RATE_HZ:
            msg = msgs[0]
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + sent // 1000, (sent % 1000) * 1_000_000
            pub.publish(msg)
            sent += 1
        if now >= next_rss:
            rss.append(node.rss_mb())
            next_rss = now + 0.5
        time.sleep(max(0.0, t0 + sent / RATE_HZ - time.monotonic()))  # sleep, not spin: leave the CPU to the node
    elapsed = time.monotonic() - t0
    probe.spin_for(1.5)  # the last frame finishes, diagnostics catch up
    values = diagnostics_values(diags)
    assert node.alive(), node.log()

    send_rate = sent / elapsed
    received = int(values["received"]) - int(start_values["received"])
    processed = int(values["processed"]) - int(start_values["processed"])
    stale = int(values["dropped_stale"]) - int(start_values["dropped_stale"])
    inference_ms = float(values["inference_mean_ms"])
    model_rate = 1000.0 / inference_ms
    processed_rate = processed / elapsed
    print(f"\nsent {sent} ({send_rate:.1f} Hz), received {received}, processed {processed} "
          f"({processed_rate:.2f} Hz), model {model_rate:.2f} Hz ({inference_ms:.0f} ms), stale drops {stale}, "
          f"latency p50 {values['latency_p50_ms']} p95 {values['latency_p95_ms']} ms, "
          f"RSS {min(rss):.0f}..{max(rss):.0f} MB")

    assert send_rate > 0.8 * RATE_HZ
    # Best-effort input on 2 shared cores: DDS may lose frames before the node sees them (how many depends on
    # the machine's load); what matters is that far more arrive than the model can take.
    assert received > 5 * processed > 0, (received, processed)
    assert inference_ms > 30, "the model is meant to be the bottleneck here"
    # The worker never idles while frames wait: it processes at the model's rate (per-frame overhead included).
    assert processed_rate >= 0.85 * model_rate, (processed_rate, model_rate)
    # Every received frame is either processed, dropped as stale, or the one in flight / pending at the end.
    assert 0 <= received - processed - stale <= 2, (received, processed, stale)
    assert stale > 0.8 * received
    # No queue: a frame waits at most about one inference before its own starts.
    assert float(values["latency_p95_ms"]) < 3.0 * inference_ms + 50, values
    # Bounded memory: after the first seconds RSS stays flat
    # (a queue of 548x342 RGB frames at 100 Hz would grow by ~56 MB/s).
    settled = rss[len(rss) // 4 :]
    assert max(settled) - min(settled) < 40.0, rss
    assert node.stop() == 0, node.log()

"""Malformed images never kill petr_node: >= 200 bad Image / CompressedImage messages (including images too small
for the front end and decompression bombs) are counted as drops (read back from /diagnostics), the node's peak
memory stays bounded, and valid frames sent after them are still processed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import diagnostics_values, image_msg, messi_rgb
from diagnostic_msgs.msg import DiagnosticArray
from petr_ros_msgs.msg import SkeletonArray
from sensor_msgs.msg import CompressedImage, Image

from petr_ros.image_codec import encode_compressed

N_BAD = 220


def _bad_raw(i: int, rng: np.random.Generator) -> Image:
    """One of fourteen kinds of broken sensor_msgs/Image."""
    kind = i % 14
    m = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=bytes(64 * 48 * 3))
    if kind == 0:
        m.encoding = "rgb9"  # unknown encoding
    elif kind == 1:
        m.encoding, m.step, m.data = "16UC1", 128, bytes(128 * 48)  # depth
    elif kind == 2:
        m.encoding, m.step, m.data = "32FC1", 256, bytes(256 * 48)  # depth
    elif kind == 3:
        m.data = bytes(100)  # shorter than step * height
    elif kind == 4:
        m.step = 10  # shorter than a row
    elif kind == 5:
        m.width = 0
    elif kind == 6:
        m.height = 0
    elif kind == 7:
        m.width, m.height, m.step = 100_000, 100_000, 300_000  # huge, with 9 KB of data
    elif kind == 8:
        m.encoding, m.width, m.step = "yuyv", 63, 126  # odd width for 4:2:2
    elif kind == 9:
        m.data = b""  # empty
    elif kind == 10:
        m.encoding = ""  # no encoding at all
    else:  # valid, but smaller than the 2D front end can use: 1x1, 2x1, 1x2000
        m.width, m.height = {11: (1, 1), 12: (2, 1), 13: (1, 2000)}[kind]
        m.step, m.data = 3 * m.width, bytes(3 * m.width * m.height)
    if rng.random() < 0.5:
        m.is_bigendian = 1
    return m


def _bad_compressed(i: int, rng: np.random.Generator, jpeg: bytes, bombs: list[bytes]) -> CompressedImage:
    """One of nine kinds of broken sensor_msgs/CompressedImage."""
    kind = i % 9
    m = CompressedImage(format="jpeg")
    if kind == 0:
        m.data = b""
    elif kind == 1:
        m.data = rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()  # noise
    elif kind == 2:
        m.data = jpeg[:2]  # a JPEG start-of-image marker and nothing else
    elif kind == 3:
        m.format, m.data = "png", b"\x89PNG\r\n\x1a\n" + bytes(50)  # PNG signature, garbage chunks
    elif kind == 4:
        m.format, m.data = "16UC1; compressedDepth png", jpeg  # compressed depth is rejected
    elif kind == 5:
        m.data = b"GIF89a" + bytes(20)  # a broken GIF header
    elif kind in (6, 7):  # decompression bombs: a 250 KB PNG and a 600 byte JPEG that declare 16000x16000 pixels
        m.format, m.data = ("png", bombs[0]) if kind == 6 else ("jpeg", bombs[1])
    else:  # a small PNG with a sound header and damaged pixel data (libpng complains on stderr)
        m.format, m.data = "png", bombs[2]
    return m


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"VmHWM not found for process {pid}")


@pytest.mark.parametrize("input_type", ["raw", "compressed"])
def test_malformed_images_are_counted_and_survived(start_node, probe, lifter_checkpoint, input_type) -> None:
    node = start_node({"lifter_checkpoint": lifter_checkpoint, "backend": "mediapipe", "torch_threads": 1,
                       "input_type": input_type, "diagnostics_period": 0.2, "min_person_score": 0.0})
    rgb = messi_rgb()
    jpeg = encode_compressed(rgb, "jpeg")
    rng = np.random.default_rng(5)
    if input_type == "raw":
        pub = probe.node.create_publisher(Image, "image", 50)
        bad = [_bad_raw(i, rng) for i in range(N_BAD)]
    else:
        from test_image_codec import jpeg_bomb, png_bomb

        pub = probe.node.create_publisher(CompressedImage, "image/compressed", 50)
        damaged = bytearray(png_bomb(64, 64))
        damaged[60:80] = bytes(20)
        bombs = [png_bomb(16000, 16000), jpeg_bomb(rgb, 16000, 16000), bytes(damaged)]
        bad = [_bad_compressed(i, rng, jpeg, bombs) for i in range(N_BAD)]
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    skeletons = probe.collect(SkeletonArray, "/petr_node/skeletons")
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 90), f"node never subscribed:\n{node.log()}"
    assert probe.spin_until(lambda: bool(diagnostics_values(diags)), 10)
    peak_before = _peak_rss_mb(node.pid)

    for msg in bad:
        pub.publish(msg)
        probe.spin_for(0.01)  # about 100 msg/s: well within what the subscriber takes, even on a busy machine
    # Wait until the node has seen all it will see (the count stops moving).
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 1.0:
        probe.spin_for(0.25)
        received = int(diagnostics_values(diags)["received"])
        if received != last:
            last, stable_since = received, time.monotonic()
    values = diagnostics_values(diags)
    assert node.alive(), node.log()
    assert int(values["received"]) >= 0.9 * N_BAD, values  # best-effort input: a few may be lost, most arrive
    assert int(values["dropped_invalid"]) == int(values["received"]), values  # every bad one counted as a drop
    assert int(values["processed"]) == 0 and int(values["errors"]) == 0, values
    assert node.log().count("dropped an input image") < 20  # throttled warnings, not one per message
    assert "libpng" not in node.log()  # its stderr lines about images already reported as drops are filtered
    # One message must not put a robot computer at risk: bombs are refused from their headers (the old node went
    # from ~0.6 to 2.1 GB on one 16000x16000 PNG).
    assert _peak_rss_mb(node.pid) - peak_before < 200, (peak_before, _peak_rss_mb(node.pid))

    # Valid frames after the storm are processed.
    stamps: list[int] = []

    def publish_valid() -> None:
        stamps.append(len(stamps) + 1)
        if input_type == "raw":
            pub.publish(image_msg(rgb, 5_000_000_000 + stamps[-1]))
        else:
            m = CompressedImage(format="jpeg", data=jpeg)
            m.header.stamp.sec, m.header.stamp.nanosec = 5, stamps[-1]
            pub.publish(m)

    assert probe.spin_until(lambda: any(a.header.stamp.sec == 5 for a in skeletons), 30, step=publish_valid,
                            period=0.3), node.log()
    assert probe.spin_until(lambda: int(diagnostics_values(diags)["processed"]) > 0, 5)
    after = diagnostics_values(diags)
    assert int(after["dropped_invalid"]) == int(values["dropped_invalid"])  # valid frames are not counted as bad
    assert node.alive()
    assert node.stop() == 0, node.log()

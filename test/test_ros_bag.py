"""Bags: write/read round trips (standard and petr_ros_msgs types, readable by the mcap library too), and a
play -> DDS -> record round trip between two processes that is pixel-exact."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import messi_rgb
from geometry_msgs.msg import Point
from petr_ros_msgs.msg import Skeleton, SkeletonArray
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.image_codec import decode_compressed
from petr_ros.ros.bag import BagWriter, bag_topics, read_bag, write_bag, write_image_bag


def _frames(n: int) -> list[np.ndarray]:
    rgb = messi_rgb()
    return [np.ascontiguousarray(np.roll(rgb, 17 * i, axis=1)) for i in range(n)]


def test_write_read_round_trip_with_custom_types(tmp_path: Path) -> None:
    arr = SkeletonArray()
    arr.header.frame_id = "camera_optical_frame"
    arr.header.stamp.sec = 42
    s = Skeleton(person_id=3, score=0.75, placement=Skeleton.PLACEMENT_INTRINSICS)
    s.joint_names = ["pelvis", "right_hip"]
    s.positions = [Point(x=0.1, y=0.2, z=3.0), Point(x=0.2, y=0.3, z=3.1)]
    s.box = np.array([1, 2, 3, 4], np.float32)
    arr.skeletons = [s]
    markers = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
    image = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(range(12)))
    bag = write_bag(tmp_path / "out", [("/petr_node/skeletons", arr, 1), ("/petr_node/markers", markers, 2),
                                       ("/image", image, 3)])
    assert bag_topics(bag) == {"/petr_node/skeletons": "petr_ros_msgs/msg/SkeletonArray",
                               "/petr_node/markers": "visualization_msgs/msg/MarkerArray",
                               "/image": "sensor_msgs/msg/Image"}
    got = list(read_bag(bag))
    assert [m.t_ns for m in got] == [1, 2, 3]
    back = got[0].msg
    assert back == arr
    assert got[1].msg == markers and got[2].msg == image

    # An independent reader (mcap + mcap-ros2-support) decodes our custom type from the schema in the file.
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    mcap_file = next(bag.glob("*.mcap"))
    with open(mcap_file, "rb") as fh:
        decoded = {ch.topic: m for _, ch, _, m in make_reader(fh, decoder_factories=[DecoderFactory()])
                   .iter_decoded_messages()}
    sk = decoded["/petr_node/skeletons"].skeletons[0]
    assert sk.person_id == 3 and abs(sk.positions[1].z - 3.1) < 1e-12 and list(sk.joint_names)[1] == "right_hip"


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "bag"
    with pytest.raises(RuntimeError, match="boom"), BagWriter(target) as bag:
        bag.write("/image", Image(height=1, width=1, encoding="mono8", step=1, data=b"\x01"), 1)
        raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing half-written left behind
    write_image_bag(target, _frames(1))
    with pytest.raises(FileExistsError, match="already exists"):
        BagWriter(target)
    with pytest.raises(FileNotFoundError):
        list(read_bag(tmp_path / "missing"))


def test_play_record_round_trip_is_pixel_exact(tmp_path: Path, ros_env: dict[str, str]) -> None:
    frames = _frames(6)
    source = tmp_path / "source"
    write_image_bag(source, frames, topic="/camera/image_raw", rate_hz=10.0)
    source_png = tmp_path / "source_png"
    write_image_bag(source_png, frames[:3], topic="/camera/image_raw/compressed", rate_hz=10.0, compressed="png")
    out = tmp_path / "recorded"
    bindir = Path(sys.executable).parent
    rec_log = open(tmp_path / "record.log", "w")  # noqa: SIM115
    recorder = subprocess.Popen(
        [str(bindir / "petr_bag_record"), str(out), "--topics", "/camera/image_raw", "/camera/image_raw/compressed",
         "--max-messages", "9", "--duration", "60", "--discovery-timeout", "30"],
        env=ros_env, stdout=rec_log, stderr=subprocess.STDOUT)
    players = [subprocess.Popen([str(bindir / "petr_bag_play"), str(bag), "--rate", "2", "--wait-for-subscribers",
                                 "30"], env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for bag in (source, source_png)]
    try:
        assert recorder.wait(90) == 0, (tmp_path / "record.log").read_text()
        for p in players:
            out_text, _ = p.communicate(timeout=30)
            assert p.returncode == 0, out_text
    finally:
        for p in (recorder, *players):
            if p.poll() is None:
                p.kill()
                p.wait()
        rec_log.close()

    recorded = list(read_bag(out))
    raw = [m.msg for m in recorded if m.topic == "/camera/image_raw"]
    png = [m.msg for m in recorded if m.topic == "/camera/image_raw/compressed"]
    assert len(raw) == 6 and len(png) == 3, (len(raw), len(png))
    for i, msg in enumerate(raw):
        assert isinstance(msg, Image) and msg.encoding == "rgb8"
        pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        np.testing.assert_array_equal(pixels, frames[i])  # pixel-exact, in order
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == 1_700_000_000_000_000_000 + i * 10**8
    for i, msg in enumerate(png):
        assert isinstance(msg, CompressedImage)
        np.testing.assert_array_equal(decode_compressed(msg.format, bytes(msg.data)), frames[i])
    # Recorded with receive times: increasing, and spread like the 10 Hz source played at rate 2 (~0.05 s apart).
    t = np.array([m.t_ns for m in recorded if m.topic == "/camera/image_raw"], dtype=np.int64)
    assert np.all(np.diff(t) > 0)
    assert 0.02 < np.median(np.diff(t)) / 1e9 < 0.5
    assert time.time_ns() - t[-1] < 120 * 10**9

"""Real ROS 2 in this environment: an Image crosses from one process to another over DDS, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

# Each side is its own interpreter: nothing is shared but the DDS domain.
PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("smoke_publisher")
    pub = node.create_publisher(Image, "smoke/image", 10)
    pixels = np.random.default_rng(7).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    msg = Image(height=480, width=640, encoding="rgb8", is_bigendian=0, step=640 * 3, data=pixels.tobytes())
    msg.header.frame_id = "camera_optical_frame"
    deadline = time.monotonic() + 20.0
    seq = 0
    while time.monotonic() < deadline:
        msg.header.stamp.sec = 1000 + seq
        pub.publish(msg)
        seq += 1
        rclpy.spin_once(node, timeout_sec=0.05)
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import hashlib, json, sys
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("smoke_subscriber")
    got = []
    node.create_subscription(Image, "smoke/image", got.append, 10)
    while not got:
        rclpy.spin_once(node, timeout_sec=0.1)
    m = got[0]
    print(json.dumps({"sha256": hashlib.sha256(bytes(m.data)).hexdigest(), "width": m.width, "height": m.height,
                      "encoding": m.encoding, "step": m.step, "frame_id": m.header.frame_id,
                      "stamp_sec": m.header.stamp.sec}))
    """
)


def test_image_crosses_processes_byte_exact(tmp_path) -> None:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(int(os.environ.get("PETR_TEST_DOMAIN_BASE", "70")) - 9)  # 61 by default
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    subscriber = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=env, stdout=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env)
    try:
        out, _ = subscriber.communicate(timeout=60)
    finally:
        publisher.kill()
        publisher.wait()
        subscriber.kill()
    assert subscriber.returncode == 0
    received = json.loads(out.strip().splitlines()[-1])
    expected = np.random.default_rng(7).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    assert received["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert (received["width"], received["height"], received["step"]) == (640, 480, 1920)
    assert received["encoding"] == "rgb8"
    assert received["frame_id"] == "camera_optical_frame"
    assert received["stamp_sec"] >= 1000

"""Shared fixtures for the ROS tests: a distinct ROS_DOMAIN_ID per test, ROS_LOG_DIR in tmp, a petr_node process
helper, an in-test rclpy probe (its own Context on the test's domain), and real model files made in tmp.

Every ROS test runs the node in a separate process and talks to it over real DDS.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from petr_ros.ros.process import NodeProcess

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
PARAMS_FILE = REPO / "config" / "petr.yaml"
SHM_PROFILE = REPO / "config" / "fastdds_shm.xml"

# Domains BASE..BASE+31 (valid on Linux), BASE 70 by default (away from 0 and from test_ros_smoke's 61); advanced
# per test so that tests never hear each other's leftovers, offset by the pid so two concurrent pytest runs rarely
# meet. PETR_TEST_DOMAIN_BASE moves the whole range (concurrent suites on one machine; at most 200).
_DOMAIN_BASE = min(200, int(os.environ.get("PETR_TEST_DOMAIN_BASE", "70")))
_DOMAINS = itertools.count((os.getpid() % 4) * 8)


def next_domain() -> int:
    """A ROS_DOMAIN_ID no other test of this run has used recently."""
    return _DOMAIN_BASE + next(_DOMAINS) % 32


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for node processes: a fresh domain id, logs in tmp, localhost discovery, few CPU threads."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(next_domain())
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    (tmp_path / "ros_log").mkdir(exist_ok=True)
    return env


def messi_rgb() -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(ASSETS / "messi5.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing asset {ASSETS / 'messi5.jpg'} (run scripts/setup_env.sh)"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def lifter_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, randomly initialised lifter checkpoint (the plumbing tests check plumbing, not accuracy)."""
    import torch

    from petr_ros.model.checkpoint import save_checkpoint
    from petr_ros.model.lifter import LifterConfig, build_lifter

    torch.manual_seed(0)
    config = LifterConfig()
    model = build_lifter(config)
    path = tmp_path_factory.mktemp("lifter") / "random_lifter.pt"
    return save_checkpoint(path, model.state_dict(), config, metadata={"note": "random weights for plumbing tests"})


@pytest.fixture(scope="session")
def hrnet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Randomly initialised HRNet-W32 weights in the official layout (a slow but real 2D backbone)."""
    import torch

    from petr_ros.model.hrnet import HRNetW32

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hrnet") / "random_hrnet_w32.pth"
    torch.save(HRNetW32().state_dict(), path)
    return path


@pytest.fixture
def start_node(ros_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """start_node(params=..., params_file=PARAMS_FILE, env=...) -> NodeProcess; every node is stopped at teardown."""
    nodes: list[NodeProcess] = []

    def start(params: dict[str, Any] | None = None, params_file: Path | None = PARAMS_FILE,
              env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> NodeProcess:
        node = NodeProcess(env or ros_env, tmp_path / f"node{len(nodes)}.log", params, params_file,
                           extra_args=extra_args, cwd=REPO)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


class Probe:
    """The test's side of the graph: an rclpy node in its own Context on the test's domain."""

    def __init__(self, domain_id: int, name: str = "petr_test_probe") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        got: list[Any] = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(deadline - time.monotonic(), 0.0)))

    def spin_until(self, predicate: Callable[[], bool], timeout: float, step: Callable[[], None] | None = None,
                   period: float = 0.1) -> bool:
        """Spin until predicate() holds; call step() every `period` seconds meanwhile (e.g. publish a frame)."""
        deadline = time.monotonic() + timeout
        next_step = 0.0
        while time.monotonic() < deadline:
            if predicate():
                return True
            if step is not None and time.monotonic() >= next_step:
                step()
                next_step = time.monotonic() + period
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe(ros_env: dict[str, str]) -> Iterator[Probe]:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    p = Probe(int(ros_env["ROS_DOMAIN_ID"]))
    yield p
    p.close()


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical_frame", encoding: str = "rgb8") -> Any:
    """A sensor_msgs/Image of `rgb` in `encoding` (via image_codec.encode_raw)."""
    from sensor_msgs.msg import Image

    from petr_ros.image_codec import encode_raw

    fields = encode_raw(rgb, encoding)
    msg = Image(**{k: fields[k] for k in ("encoding", "width", "height", "step", "is_bigendian")})
    msg.data = fields["data"]
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return msg


def diagnostics_values(msgs: list[Any]) -> dict[str, str]:
    """Key/values of the newest petr_node status on /diagnostics ({} when none yet)."""
    from petr_ros.ros.node import DIAGNOSTIC_NAME

    for msg in reversed(msgs):
        for status in msg.status:
            if status.name == DIAGNOSTIC_NAME:
                return {kv.key: kv.value for kv in status.values}
    return {}

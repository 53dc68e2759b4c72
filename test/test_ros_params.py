"""petr_node parameters and lifecycle over real services: invalid values rejected with a reason, model parameters
locked once configured, dynamic ones applied live, the lifecycle transitions, and one clear error for missing or
corrupt weights at configure."""

from __future__ import annotations

from typing import Any

from conftest import image_msg, messi_rgb
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.ros.node import check_parameter


def _call(probe, client, request, timeout: float = 60.0) -> Any:
    assert client.wait_for_service(timeout_sec=60.0), f"service {client.srv_name} never appeared"
    future = client.call_async(request)
    assert probe.spin_until(future.done, timeout), f"no answer from {client.srv_name}"
    return future.result()


def _set(probe, client, name: str, value: Any) -> tuple[bool, str]:
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    result = _call(probe, client, req).results[0]
    return result.successful, result.reason


def _transition(probe, client, transition_id: int) -> bool:
    return _call(probe, client, ChangeState.Request(transition=Transition(id=transition_id)), 120.0).success


def _state(probe, client) -> str:
    return _call(probe, client, GetState.Request()).current_state.label


def test_lifecycle_and_parameter_validation(start_node, probe, lifter_checkpoint) -> None:
    node = start_node({"autostart": False, "lifter_checkpoint": lifter_checkpoint, "torch_threads": 1,
                       "backend": "hrnet", "min_persn_score": 0.5})
    set_params = probe.node.create_client(SetParameters, "/petr_node/set_parameters")
    change = probe.node.create_client(ChangeState, "/petr_node/change_state")
    get_state = probe.node.create_client(GetState, "/petr_node/get_state")

    assert _state(probe, get_state) == "unconfigured"  # autostart false: waits for a lifecycle manager
    assert "unknown parameter 'min_persn_score' ignored" in node.log()  # a typo is reported, not silently dropped
    # Rejected with a reason, whatever the state.
    ok, reason = _set(probe, set_params, "backend", "openpose")
    assert not ok and "backend must be one of auto, hrnet, mediapipe" in reason
    ok, reason = _set(probe, set_params, "device", "gpu0")
    assert not ok and "device must be" in reason
    ok, reason = _set(probe, set_params, "min_person_score", 1.5)
    assert not ok and "min_person_score" in reason
    ok, reason = _set(probe, set_params, "max_persons", "ten")
    assert not ok and reason  # wrong type: refused by the descriptor
    # Model parameters may change while unconfigured.
    assert _set(probe, set_params, "backend", "mediapipe") == (True, "")

    assert _transition(probe, change, Transition.TRANSITION_CONFIGURE), node.log()
    assert _state(probe, get_state) == "inactive"
    assert "backend mediapipe" in node.log()
    ok, reason = _set(probe, set_params, "device", "cpu")
    assert not ok and "read at configure" in reason
    assert _set(probe, set_params, "marker_alpha", 0.5) == (True, "")
    assert _set(probe, set_params, "min_person_score", 0.0) == (True, "")

    pub = probe.node.create_publisher(Image, "image", 10)
    markers = probe.collect(MarkerArray, "/petr_node/markers")
    probe.spin_for(1.0)
    assert pub.get_subscription_count() == 0  # inactive: no subscriptions yet

    assert _transition(probe, change, Transition.TRANSITION_ACTIVATE), node.log()
    assert _state(probe, get_state) == "active"
    ok, reason = _set(probe, set_params, "image_topic", "other")
    assert not ok and "read at activate" in reason
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)
    rgb = messi_rgb()
    assert probe.spin_until(lambda: any(m.markers and m.markers[0].action == Marker.ADD for m in markers), 30,
                            step=lambda: pub.publish(image_msg(rgb, 1_000_000_000)), period=0.3), node.log()
    # The dynamic marker_alpha took effect.
    drawn = next(m for m in markers if m.markers and m.markers[0].action == Marker.ADD)
    assert all(abs(c.a - 0.5) < 1e-6 for c in drawn.markers[0].colors)

    assert _transition(probe, change, Transition.TRANSITION_DEACTIVATE)
    assert probe.spin_until(lambda: pub.get_subscription_count() == 0, 10)  # released
    assert _transition(probe, change, Transition.TRANSITION_CLEANUP)
    assert _state(probe, get_state) == "unconfigured"
    assert _set(probe, set_params, "device", "cpu") == (True, "")
    assert node.alive()
    assert node.stop() == 0, node.log()


def test_missing_weights_one_clear_error(start_node, tmp_path) -> None:
    missing = tmp_path / "nowhere" / "petr_lifter.pt"
    node = start_node({"lifter_checkpoint": missing})
    assert node.proc.wait(60) == 1
    log = node.log()
    assert f"lifter_checkpoint file not found: '{missing}'" in log and "expected a petr_ros lifter checkpoint" in log
    assert log.count("configure failed") == 1 and "Traceback" not in log


def test_corrupt_weights_one_clear_error(start_node, tmp_path, lifter_checkpoint) -> None:
    corrupt = tmp_path / "corrupt_lifter.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint" * 10)
    node = start_node({"lifter_checkpoint": corrupt})
    assert node.proc.wait(60) == 1
    log = node.log()
    assert "configure failed" in log and str(corrupt) in log and "Traceback" not in log

    # A whole pickled model instead of tensors: one line naming the file and what was expected, not PyTorch's
    # advice to load it with weights_only=False.
    import torch

    pickled = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    for params in ({"lifter_checkpoint": pickled}, {"lifter_checkpoint": lifter_checkpoint, "backend": "hrnet",
                                                     "hrnet_weights": pickled}):
        node = start_node(params)
        assert node.proc.wait(60) == 1
        errors = [line for line in node.log().splitlines() if "configure failed" in line]
        assert len(errors) == 1 and str(pickled) in errors[0] and "expected tensors only" in errors[0], node.log()
        assert "weights_only" not in node.log() and "Traceback" not in node.log()

    bad_hrnet = tmp_path / "pose_hrnet_w32_256x192.pth"
    bad_hrnet.write_bytes(bytes(1000))
    node = start_node({"lifter_checkpoint": lifter_checkpoint, "backend": "hrnet", "hrnet_weights": bad_hrnet})
    assert node.proc.wait(60) == 1
    log = node.log()
    assert "configure failed" in log and str(bad_hrnet) in log and "Traceback" not in log


def test_invalid_start_parameter_is_refused_with_reason(start_node) -> None:
    node = start_node({"device": "gpu"})
    assert node.proc.wait(60) == 2
    assert "device must be auto, cpu, cuda or cuda:N, got 'gpu'" in node.log()


def test_check_parameter_reasons() -> None:
    assert check_parameter("device", "cuda:1") is None
    assert check_parameter("device", "cuda:x") is not None
    assert "must be in [0.0, 1.0]" in check_parameter("min_person_score", -0.1)
    assert "must not be empty" in check_parameter("image_topic", " ")
    assert "finite" in check_parameter("default_depth", float("nan"))
    assert check_parameter("input_type", "compressed") is None
    assert check_parameter("unknown_parameter", 3) is None

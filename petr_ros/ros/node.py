"""`petr_node`: the rclpy lifecycle node that turns camera images into 3D skeletons (the ROS shell around
`petr_ros.pipeline.FramePipeline`; everything per frame that is not ROS happens there).

Lifecycle: configure loads and warms up the model (weights errors surface here, once, naming the file); activate
creates the publishers, the subscriptions, the worker thread and the diagnostics timer; deactivate and cleanup
release them. With `autostart: true` (the default) the node configures and activates itself.

Data flow: image callback (executor thread; raw images arrive serialised and are read in place) ->
decode/validate (bad input: throttled warning + counted drop) -> one-slot hand-off (`petr_ros.handoff.LatestSlot`:
a newer frame replaces a pending one, counted as a stale drop; memory stays bounded) -> worker thread:
`FramePipeline.process` -> publish MarkerArray, PoseArray, SkeletonArray, optional debug image and TF
(`petr_ros.ros.messages`: the first three written as CDR bytes where rclpy reads them back as its own, each only
while something subscribes to it), all with the input image's header. docs/node.md "Never blocking" and
"Benchmark" give the node's own cost per frame.

At the door (ROS conventions a user relies on): topic names are validated when set; a failed activate logs why and
stays inactive; CameraInfo with an implausible field of view or principal point is refused, changes of the
intrinsics are logged, and no skeleton farther than `max_depth` is published; images too small for the front end
and an empty `frame_id` are handled with a reason; samples lost in transport (DDS `message_lost` events) are counted
in /diagnostics with a one-time warning naming the fix; /diagnostics reports the lifecycle state while inactive too
(on a steady clock, so `use_sim_time` without /clock does not stall it); the process exits after the shutdown
transition; a second node with the same name is warned about; a track that ends gets its markers deleted.

Run: `petr_node --ros-args --params-file config/petr.yaml -r image:=/camera/color/image_raw`.
"""

# ruff: noqa: E402 - the Ctrl-C guard below has to run before the slow imports
from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "petr_node":
    # Ctrl-C while the imports below load (PyTorch, MediaPipe: seconds) ends the start quietly with exit code 0
    # instead of a KeyboardInterrupt traceback; main() puts Python's own handler back before rclpy starts.
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

import dataclasses
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray
from petr_ros_msgs.msg import PersonBoxes, SkeletonArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import InvalidTopicNameException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.expand_topic_name import expand_topic_name
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.validate_full_topic_name import validate_full_topic_name
from rclpy.validate_topic_name import validate_topic_name
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from petr_ros.camera import Intrinsics, intrinsics_error
from petr_ros.estimator import BACKENDS
from petr_ros.handoff import LatestSlot
from petr_ros.image_codec import ImageDecodeError
from petr_ros.model.device import PRECISIONS, device_spec_error
from petr_ros.model.runtime import RUNTIMES
from petr_ros.pipeline import REJECTION_REASONS, FramePipeline, PipelineSettings, load_estimator
from petr_ros.render import draw_persons_cv2
from petr_ros.results import PersonResult
from petr_ros.ros import messages, stderr_filter
from petr_ros.ros.tf import TfBroadcaster, TfUnavailableError
from petr_ros.stats import ProcessingStats

NODE_NAME = "petr_node"
DIAGNOSTIC_NAME = "petr_node: pose estimation"
WARN_THROTTLE_S = 5.0
# Smallest image side the 2D front ends can use (MediaPipe and HRNet resize to 256 px: below this there is no person
# to find, and the front ends fail in ways that would be counted as model errors).
MIN_IMAGE_SIDE = 32
INPUT_DEPTH = 1  # the image subscription's history (KEEP_LAST)
TOO_FAR = "too_far"  # rejection reason: the placed pelvis is farther than max_depth
DUPLICATE_CHECK_S = 2.0  # after start-up, when discovery has seen the other nodes
SHM_PROFILE_NAME = "fastdds_shm.xml"
SHM_PROFILE_HINT = ("load the shared-memory profile in the camera driver and in this node: export "
                    "FASTDDS_DEFAULT_PROFILES_FILE=<petr_ros share>/config/fastdds_shm.xml (the launch file does it "
                    "for the node), or publish reliably and set input_reliability:=reliable")
_CORE = PipelineSettings()  # the core's defaults, which the parameters below take (one copy of each)


# --- parameters ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One declared parameter. `when`: 'dynamic' (changes apply at once), 'activate' (read at activate: changes
    refused while active), 'configure' (read at configure: changes refused unless unconfigured)."""

    name: str
    default: Any
    description: str
    when: str = "dynamic"
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


PARAMS: tuple[Param, ...] = (
    Param("autostart", True, "configure and activate at start-up (false: wait for a lifecycle manager)", "configure"),
    # model (read at configure)
    Param("lifter_checkpoint", "", "lifter checkpoint (.pt from petr_train); empty: the one shipped in the package",
          "configure"),
    Param("backend", _CORE.backend, "2D front end: hrnet (PETR backbone, needs hrnet_weights), mediapipe "
          "(BlazePose, shipped) or auto (hrnet when weights are given, else mediapipe)", "configure",
          choices=BACKENDS),
    Param("hrnet_weights", "", "HRNet-W32 COCO weights (pose_hrnet_w32_256x192.pth) for the hrnet backend",
          "configure"),
    Param("device", _CORE.device, "auto (CUDA when available), cpu, cuda or cuda:N", "configure"),
    Param("precision", _CORE.precision, "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 (CUDA only) or bf16 of the "
          "2D backbone", "configure", choices=PRECISIONS),
    Param("torch_threads", 0, "CPU threads for PyTorch (0: PyTorch's default)", "configure", range=(0, 256)),
    Param("hrnet_runtime", _CORE.hrnet_runtime, "who runs the HRNet-W32 backbone on the CPU: torch, onnxruntime, "
          "openvino (pip install .[cpu-runtime]) or auto (the fastest installed); falls back to torch with the "
          "reason logged; ignored by the mediapipe backend", "configure", choices=RUNTIMES),
    # inputs (read at activate)
    Param("input_type", "raw", "raw: sensor_msgs/Image on image_topic; compressed: sensor_msgs/CompressedImage on "
          "<image_topic>/compressed", "activate", choices=("raw", "compressed")),
    Param("image_topic", "image", "input image topic (relative: remap it or set it)", "activate"),
    Param("input_reliability", "best_effort", "QoS of the image subscription: best_effort (sensor data, matches any "
          "publisher) or reliable (retransmits lost fragments of large images; needs a reliable publisher)",
          "activate", choices=("best_effort", "reliable")),
    Param("camera_info_topic", "camera_info", "sensor_msgs/CameraInfo topic (intrinsics for metric placement)",
          "activate"),
    Param("use_camera_info", True, "use CameraInfo intrinsics when received (else default focal length and depth)",
          "activate"),
    Param("detections_topic", "", "optional petr_ros_msgs/PersonBoxes input (boxes with the image's stamp); "
          "empty: the front end detects people itself", "activate"),
    Param("output_qos_depth", 5, "history depth of the reliable output topics", "activate", range=(1, 100)),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", "activate", range=(0.1, 60.0)),
    # cheap, dynamic
    Param("min_person_score", _CORE.plausibility.min_score, "people whose mean keypoint confidence is lower are not "
          "published", range=(0.0, 1.0)),
    Param("max_persons", _CORE.max_persons, "publish at most this many people per frame (highest scores first)",
          range=(1, 100)),
    Param("default_depth", _CORE.default_depth, "metres from the camera to the pelvis when no CameraInfo is "
          "available", range=(0.1, 100.0)),
    Param("default_focal_length", _CORE.default_focal_length, "focal length in pixels assumed without CameraInfo "
          "(0: a 60 degree horizontal field of view)", range=(0.0, 100000.0)),
    Param("max_depth", 30.0, "people whose pelvis is placed farther from the camera (metres) are not published",
          range=(0.5, 1000.0)),
    Param("default_frame_id", "camera_optical_frame", "frame of the outputs when an image comes with an empty "
          "header.frame_id (warned once)"),
    Param("tracking", _CORE.tracking, "keep person ids across frames (petr_ros.tracking)"),
    Param("tracking_iou_threshold", _CORE.tracking_iou_threshold, "box overlap (IoU) for a detection to continue a "
          "track", range=(0.0, 1.0)),
    Param("tracking_max_missed", _CORE.tracking_max_missed, "frames a track survives unseen", range=(0, 1000)),
    Param("tracking_confirm_hits", _CORE.tracking_confirm_hits, "frames in a row a new person touching a tracked "
          "one must be seen before it is published (1: at once; counted as rejected_unconfirmed until then)",
          range=(1, 100)),
    Param("smoothing", _CORE.smoothing, "One-Euro smoothing of joints, keypoints and rotations per tracked person "
          "(needs tracking)"),
    Param("smoothing_min_cutoff", _CORE.smoothing_min_cutoff, "One-Euro minimum cutoff frequency (Hz): lower is "
          "smoother", range=(0.001, 100.0)),
    Param("smoothing_beta", _CORE.smoothing_beta, "One-Euro speed coefficient: higher follows fast motion sooner",
          range=(0.0, 100.0)),
    Param("publish_markers", True, "publish ~/markers (visualization_msgs/MarkerArray)"),
    Param("publish_poses", True, "publish ~/poses (geometry_msgs/PoseArray, 17 joint frames per person)"),
    Param("publish_skeletons", True, "publish ~/skeletons (petr_ros_msgs/SkeletonArray)"),
    Param("publish_debug_image", False, "publish ~/debug_image (the input with the 2D keypoints drawn)"),
    Param("publish_tf", False, "broadcast TF frames body_<id> (REP-155) and <joint>_<id> on /tf, children of the "
          "image's frame (tf2_ros's broadcaster, or tf2_msgs/TFMessage where tf2_ros is missing)", "activate"),
    Param("marker_joint_radius", 0.03, "joint sphere radius (m)", range=(0.001, 1.0)),
    Param("marker_bone_width", 0.02, "bone line width (m)", range=(0.001, 1.0)),
    Param("marker_lifetime", 0.5, "seconds a skeleton stays in RViz without an update", range=(0.0, 60.0)),
    Param("marker_alpha", 1.0, "marker opacity", range=(0.0, 1.0)),
)
PARAM_BY_NAME = {p.name: p for p in PARAMS}
TOPIC_PARAMS = ("image_topic", "camera_info_topic", "detections_topic")
# Parameters that are PipelineSettings fields of the same name (min_person_score is plausibility.min_score).
_SETTING_PARAMS = tuple(f.name for f in dataclasses.fields(PipelineSettings) if f.name in PARAM_BY_NAME)
_PIPELINE_PARAMS = frozenset((*_SETTING_PARAMS, "min_person_score"))


def _descriptor(p: Param) -> ParameterDescriptor:
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    extra = {"dynamic": "", "activate": " (read at activate)", "configure": " (read at configure)"}[p.when]
    d = ParameterDescriptor(name=p.name, type=kinds[type(p.default)], description=p.description + extra)
    if isinstance(p.default, float):
        # `default_depth: 2` in a params file or `ros2 param set ... default_depth 2` is a number too: accept
        # integers (the set-parameters callback checks that the value is a number; p() reads it as a float).
        d.dynamic_typing = True
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.range is not None:
        if isinstance(p.default, int) and not isinstance(p.default, bool):
            d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]), to_value=float(p.range[1]))]
    return d


def check_parameter(name: str, value: Any) -> str | None:
    """Why `value` is not valid for parameter `name` (None when it is). Ranges and types are also enforced by
    the descriptors; this adds choices, formats and files."""
    p = PARAM_BY_NAME.get(name)
    if p is None:
        return None
    if isinstance(p.default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{name} must be a number, got {value!r}"
    if name in TOPIC_PARAMS and str(value).strip() and (reason := topic_name_error(str(value))) is not None:
        return f"{name}: {reason}"
    if name == "default_frame_id" and not str(value).strip():
        return "default_frame_id must not be empty"
    if p.choices and value not in p.choices:
        return f"{name} must be one of {', '.join(p.choices)}, got '{value}'"
    if name == "device" and (reason := device_spec_error(str(value))) is not None:
        return reason
    if name in ("image_topic", "camera_info_topic") and not str(value).strip():
        return f"{name} must not be empty"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be finite, got {value}"
    if p.range is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
        lo, hi = p.range
        if not lo <= value <= hi:
            return f"{name} must be in [{lo}, {hi}], got {value}"
    return None


def topic_name_error(name: str) -> str | None:
    """Why `name` is not a valid ROS topic name (relative, private `~/` or absolute), None when it is."""
    try:
        validate_topic_name(name)
        validate_full_topic_name(expand_topic_name(name, NODE_NAME, "/"))
    except (InvalidTopicNameException, ValueError) as exc:  # ValueError: e.g. an unknown {substitution}
        reason = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").split(", at /")[0]
        return f"'{name}' is not a valid topic name ({reason})"
    return None


def load_error_text(exc: BaseException) -> str:
    """One line for a model-loading error: PyTorch's multi-line advice on `weights_only` (a file of pickled Python
    objects, e.g. a whole saved model) becomes what the file is and what was expected."""
    text = str(exc)
    marker = "Weights only load failed"
    if marker in text:
        head = text.split(marker)[0].rstrip(" :").removesuffix("UnpicklingError").rstrip(" :")
        return (f"{head}: the file holds pickled Python objects (e.g. a whole saved model), which are not loaded "
                f"for safety; expected tensors only (a state_dict, or a petr_ros checkpoint from petr_train)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def settings_from_parameters(values: dict[str, Any]) -> PipelineSettings:
    """The pipeline's settings for parameter values {name: value} (every pipeline parameter present)."""
    fields = {name: values[name] for name in _SETTING_PARAMS}
    for name in fields:
        if isinstance(PARAM_BY_NAME[name].default, float):
            fields[name] = float(fields[name])  # integers accepted for float parameters
    for name in ("lifter_checkpoint", "hrnet_weights"):
        fields[name] = str(fields[name]) or None  # "" in a params file: the default (shipped lifter, no weights)
    plausibility = dataclasses.replace(_CORE.plausibility, min_score=float(values["min_person_score"]))
    return PipelineSettings(plausibility=plausibility, **fields)


@dataclass
class Frame:
    """One decoded image waiting for the worker."""

    header: Header
    rgb: np.ndarray
    received: float  # time.monotonic() at the callback
    intrinsics: Intrinsics | None
    boxes: np.ndarray | None


# --- the node ---------------------------------------------------------------------------------------------------
class PetrNode(LifecycleNode):
    """Monocular 3D human pose: images in; markers, joint frames, skeletons, diagnostics out (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._state = "unconfigured"
        self._state_reason = ""  # why the node is where it is (a failed transition), for /diagnostics
        self.finished = threading.Event()  # set by the shutdown transition: main() then exits
        self._pipeline: FramePipeline | None = None
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._tf: Any = None
        self._worker: threading.Thread | None = None
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._intrinsics: Intrinsics | None = None
        self._camera_info_size: tuple[int, int] = (0, 0)
        self._boxes: deque[tuple[int, np.ndarray]] = deque(maxlen=30)  # (stamp in ns, boxes) of recent PersonBoxes
        self.stats = ProcessingStats(rejection_reasons=(*REJECTION_REASONS, TOO_FAR))
        self._lost_input = 0  # samples the DDS layer reports lost on the image subscription (message_lost events)
        self._lost_warned = self._frame_id_warned = False
        self._shown_ids: set[int] = set()  # person ids whose markers RViz is showing
        self._write_cdr = False  # outputs written as CDR bytes (where messages.cdr_matches_rclpy, at activate)
        # rclpy silently ignores overrides of undeclared names: say so, a typo in a params file is otherwise
        # invisible. Before declaring: an invalid value of another parameter ends the start there.
        for name in sorted(set(getattr(self, "_parameter_overrides", {})) - set(PARAM_BY_NAME)):
            if not self.has_parameter(name):
                self.get_logger().warning(f"unknown parameter '{name}' ignored (see config/petr.yaml for the names)")
        # Validation runs for the declared values too (params file, -p overrides): register before declaring.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        # /diagnostics from the start, whatever the lifecycle state, on the steady clock: with use_sim_time and no
        # /clock a ROS-time timer would never fire.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.p("diagnostics_period")), self._publish_diagnostics,
                                             clock=self._steady)
        self._duplicate_timer = self.create_timer(DUPLICATE_CHECK_S, self._check_duplicate_name, clock=self._steady)

    # parameters ---------------------------------------------------------------------------------------------
    def p(self, name: str) -> Any:
        value = self.get_parameter(name).value
        spec = PARAM_BY_NAME.get(name)
        return float(value) if spec is not None and isinstance(spec.default, float) else value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            spec = PARAM_BY_NAME.get(param.name)
            if spec is None:
                continue
            reason = check_parameter(param.name, param.value)
            if reason is None and spec.when == "configure" and self._state != "unconfigured":
                reason = f"{param.name} is read at configure: deactivate and clean up the node before changing it"
            if reason is None and spec.when == "activate" and self._state == "active":
                reason = f"{param.name} is read at activate: deactivate the node before changing it"
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        pipeline = self._pipeline
        if pipeline is not None and {p.name for p in params} & _PIPELINE_PARAMS:
            try:  # the callback runs before the values are set: the settings are built with them
                pipeline.configure(self._settings({p.name: p.value for p in params}))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _settings(self, override: dict[str, Any] | None = None) -> PipelineSettings:
        """The pipeline's settings from the current parameters (plus values being set)."""
        values = {name: self.p(name) for name in _PIPELINE_PARAMS}
        values.update({k: v for k, v in (override or {}).items() if k in _PIPELINE_PARAMS})
        return settings_from_parameters(values)

    # lifecycle ----------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            self._pipeline = self._load_pipeline()
        except Exception as exc:  # noqa: BLE001 - every load problem becomes one clear error, not a traceback
            reason = load_error_text(exc)
            log.error(f"configure failed: {reason}")
            self._pipeline = None
            self._state_reason = f"configure failed: {reason}"
            return TransitionCallbackReturn.FAILURE
        self._state, self._state_reason = "inactive", ""
        return TransitionCallbackReturn.SUCCESS

    def _load_pipeline(self) -> FramePipeline:
        import torch

        threads = int(self.p("torch_threads"))
        if threads > 0:
            torch.set_num_threads(threads)
        settings = self._settings()
        t0 = time.monotonic()
        estimator = load_estimator(settings)
        runtime = getattr(getattr(estimator.frontend, "runtime", None), "reason", None)
        # The OpenMP wait policy can halve or multiply the backbone's speed (docs/model.md "Threads"): never silent.
        wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)")
        self.get_logger().info(
            f"model ready in {time.monotonic() - t0:.1f} s: backend {estimator.backend_name} "
            f"({estimator.backend_reason}){f', {runtime}' if runtime else ''}, device {estimator.device}, "
            f"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY {wait_policy}")
        return FramePipeline(settings, estimator=estimator)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as exc:  # noqa: BLE001 - a failed activate says why and keeps the model (stays inactive)
            self._release_io()
            self._state, self._state_reason = "inactive", f"activate failed: {exc}"
            self.get_logger().error(f"activate failed, staying inactive: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _activate(self) -> None:
        log = self.get_logger()
        out_qos = QoSProfile(depth=int(self.p("output_qos_depth")), history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "markers": self.create_publisher(MarkerArray, "~/markers", out_qos),
            "poses": self.create_publisher(PoseArray, "~/poses", out_qos),
            "skeletons": self.create_publisher(SkeletonArray, "~/skeletons", out_qos),
            "debug_image": self.create_publisher(Image, "~/debug_image", out_qos),
        }
        self._write_cdr = messages.cdr_matches_rclpy()
        self._tf = None
        if self.p("publish_tf"):
            try:
                self._tf = TfBroadcaster(self)
            except TfUnavailableError as exc:
                log.warning(f"{exc}: no TF frames are broadcast (the joint frames are still on ~/poses and "
                            f"~/skeletons)")
        # Sensor-data QoS (best effort unless input_reliability says otherwise) with a history of one image: the
        # newest frame wins already in DDS. With a deeper history the events executor was measured taking one image
        # behind (HRNet, 5 fps from a 30 Hz camera: latency 542 ms instead of 190 ms); depth 1: 186 ms.
        reliability = ReliabilityPolicy.RELIABLE if self.p("input_reliability") == "reliable" else \
            qos_profile_sensor_data.reliability
        in_qos = QoSProfile(depth=INPUT_DEPTH, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                            durability=qos_profile_sensor_data.durability)
        # image_transport's convention: the compressed stream is <the base topic, remapped>/compressed.
        topic = self.resolve_topic_name(self.p("image_topic"))
        events = SubscriptionEventCallbacks(message_lost=self._on_message_lost)
        if self.p("input_type") == "compressed":
            topic = topic.rstrip("/") + "/compressed"
            self._subs.append(self.create_subscription(CompressedImage, topic, self._on_image, in_qos,
                                                       event_callbacks=events))
        else:
            # raw: the serialised bytes, read in place by messages.image_from_serialized (one copy of the pixels
            # fewer than a deserialised Image, and no Python message object).
            self._subs.append(self.create_subscription(Image, topic, self._on_image, in_qos, event_callbacks=events,
                                                       raw=True))
        if self.p("use_camera_info"):
            self._subs.append(self.create_subscription(CameraInfo, self.p("camera_info_topic"), self._on_camera_info,
                                                       qos_profile_sensor_data))
        if self.p("detections_topic"):
            self._subs.append(self.create_subscription(PersonBoxes, self.p("detections_topic"), self._on_boxes, 10))
        self._stop.clear()
        self._slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, name="petr_inference", daemon=True)
        self._worker.start()
        # diagnostics_period is read here: a new timer with the current period.
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(float(self.p("diagnostics_period")), self._publish_diagnostics,
                                             clock=self._steady)
        self._state, self._state_reason = "active", ""
        log.info(f"active: {self.p('input_type')} images on {topic}, outputs on {self.get_fully_qualified_name()}"
                 f"/{{markers,poses,skeletons}}{', TF on /tf (' + self._tf.backend + ')' if self._tf else ''}; "
                 f"outputs serialised {'by petr_ros (checked against rclpy)' if self._write_cdr else 'by rclpy'}; "
                 f"image conversion via "
                 f"{'cv_bridge' if messages.uses_cv_bridge() else 'numpy (cv_bridge not importable)'}")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        markers = self._pubs.get("markers")
        if markers is not None and self._shown_ids:  # no skeleton stays in RViz after the node stops publishing
            markers.publish(messages.marker_array(Header(stamp=self.get_clock().now().to_msg()), [], 0.0, 0.0))
        self._release_io()
        self._state, self._state_reason = "inactive", ""
        return TransitionCallbackReturn.SUCCESS

    def _release_io(self) -> None:
        # Order matters: no new frames, then the worker stops (it may be publishing), then the publishers go.
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._stop.set()
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        if self._tf is not None:
            self._tf.destroy()
        self._tf = None
        self._shown_ids = set()

    def _release_model(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
        self._pipeline = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_model()
        self._intrinsics = None
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_io()
        self._release_model()
        self._state = "finalized"
        self.finished.set()  # main() leaves its spin loop and the process exits
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_io()
        self._release_model()
        self._state, self._state_reason = "unconfigured", "an error in a transition (see the log)"
        return TransitionCallbackReturn.SUCCESS

    # callbacks (executor thread) ----------------------------------------------------------------------------
    def _on_image(self, msg: bytes | CompressedImage) -> None:
        """An input image: raw images arrive serialised (bytes), compressed ones as messages."""
        received = time.monotonic()
        self.stats.on_received()
        try:
            if isinstance(msg, bytes):
                msg = messages.image_from_serialized(msg)
            rgb = messages.image_msg_to_rgb(msg)
        except ImageDecodeError as exc:
            self.stats.on_invalid()
            self.get_logger().warning(f"dropped an input image: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        except Exception as exc:  # noqa: BLE001 - whatever a malformed message does, the node lives on
            self.stats.on_invalid()
            self.get_logger().warning(f"dropped an input image ({type(exc).__name__}: {exc})",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_IMAGE_SIDE:
            self.stats.on_invalid()
            self.get_logger().warning(f"dropped an input image: {w}x{h} is smaller than the 2D front end can use "
                                      f"(at least {MIN_IMAGE_SIDE} px a side)", throttle_duration_sec=WARN_THROTTLE_S)
            return
        header = msg.header
        if not header.frame_id.strip():
            # RViz and TF cannot use an empty frame: publish in default_frame_id, and say so once.
            header = Header(stamp=header.stamp, frame_id=self.p("default_frame_id"))
            if not self._frame_id_warned:
                self._frame_id_warned = True
                self.get_logger().warning(f"input images have an empty header.frame_id: outputs use "
                                          f"default_frame_id '{header.frame_id}' (set the camera driver's frame_id)")
        intrinsics = self._intrinsics_for(w, h)
        frame = Frame(header, rgb, received, intrinsics, self._boxes_for(header))
        if self._slot.put(frame):
            self.stats.on_stale()

    def _on_message_lost(self, info: Any) -> None:
        self._lost_input += int(info.total_count_change)
        if not self._lost_warned:
            self._lost_warned = True
            self.get_logger().warning(f"input images are being lost in transport before they reach the node "
                                      f"({info.total_count} so far; counted as lost_input in /diagnostics): "
                                      f"{SHM_PROFILE_HINT}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        keep = " (keeping the previous intrinsics)" if self._intrinsics is not None else \
            " (people are placed at default_depth)"
        try:
            k = Intrinsics.from_k(msg.k, msg.width, msg.height)
            reason = intrinsics_error(k, msg.width, msg.height) if msg.width > 0 and msg.height > 0 else None
        except ValueError as exc:
            reason = str(exc)
        if reason is not None:
            self.get_logger().warning(f"ignoring CameraInfo: {reason}{keep}", throttle_duration_sec=30.0)
            return
        old = self._intrinsics
        if old is None:
            self.get_logger().info(f"camera intrinsics received: fx={k.fx:.1f} fy={k.fy:.1f} cx={k.cx:.1f} "
                                   f"cy={k.cy:.1f} ({msg.width}x{msg.height}), used to place skeletons metrically")
        elif not np.allclose([old.fx, old.fy, old.cx, old.cy, old.width, old.height],
                             [k.fx, k.fy, k.cx, k.cy, k.width, k.height], rtol=1e-6, atol=1e-9):
            self.get_logger().info(f"camera intrinsics changed: fx={old.fx:.1f}->{k.fx:.1f} fy={old.fy:.1f}->"
                                   f"{k.fy:.1f} cx={old.cx:.1f}->{k.cx:.1f} cy={old.cy:.1f}->{k.cy:.1f} "
                                   f"({old.width}x{old.height}->{k.width}x{k.height})")
        self._intrinsics = k

    def _intrinsics_for(self, width: int, height: int) -> Intrinsics | None:
        k = self._intrinsics
        if k is None:
            return None
        if k.width <= 0 or k.height <= 0:
            # CameraInfo without a size: check it against the image it is used for.
            reason = intrinsics_error(k, width, height)
            if reason is not None:
                self.get_logger().warning(f"not using CameraInfo for a {width}x{height} image: {reason}",
                                          throttle_duration_sec=30.0)
                return None
            return k
        if (k.width, k.height) == (width, height):
            return k
        # The image was resized or binned relative to the calibration: scale K with it.
        sx, sy = width / k.width, height / k.height
        return Intrinsics(k.fx * sx, k.fy * sy, k.cx * sx, k.cy * sy, width, height)

    def _on_boxes(self, msg: PersonBoxes) -> None:
        boxes = np.asarray(msg.boxes, np.float32)
        if boxes.size % 4 or not np.all(np.isfinite(boxes)):
            self.get_logger().warning(f"ignoring PersonBoxes with {boxes.size} values (need 4 finite per box)",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._boxes.append((messages.stamp_to_ns(msg.header.stamp), boxes.reshape(-1, 4)))

    def _boxes_for(self, header: Header) -> np.ndarray | None:
        key = messages.stamp_to_ns(header.stamp)
        for stamp, boxes in reversed(self._boxes):
            if stamp == key:
                return boxes
        return None

    # worker thread --------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            frame = self._slot.get(timeout=0.1)
            if frame is None:
                continue
            try:
                self._process(frame)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not end the worker
                if not self.context.ok():  # Ctrl-C / shutdown while publishing: not a frame error
                    return
                self.stats.on_error()
                self.get_logger().error(f"frame failed ({type(exc).__name__}: {exc})",
                                        throttle_duration_sec=WARN_THROTTLE_S)

    def _process(self, frame: Frame) -> None:
        t0 = time.monotonic()
        pipeline = self._pipeline
        stamp_s = messages.stamp_to_sec(frame.header.stamp)
        # Unstamped images (stamp 0) still need increasing times for smoothing and the track histories.
        persons = pipeline.process(frame.rgb, stamp_s if stamp_s > 0 else frame.received, frame.intrinsics,
                                   frame.boxes)
        report = pipeline.last_report
        rejected = dict(report.rejected)
        max_depth = float(self.p("max_depth"))
        near = [p for p in persons if float(np.linalg.norm(p.joints3d_camera[0])) <= max_depth]
        if len(near) < len(persons):
            rejected[TOO_FAR] = rejected.get(TOO_FAR, 0) + len(persons) - len(near)
            self.get_logger().warning(f"not publishing {len(persons) - len(near)} person(s) placed farther than "
                                      f"max_depth {max_depth:g} m", throttle_duration_sec=WARN_THROTTLE_S)
        persons = near
        self._publish(frame, persons)
        done = time.monotonic()
        inference_s = report.timings_s["estimate"]
        self.stats.on_processed(done - frame.received, len(persons), inference_s, done - t0 - inference_s,
                                rejected, report.timings_s)

    def _publish(self, frame: Frame, persons: list[PersonResult]) -> None:
        header = frame.header
        pubs = self._pubs
        if not pubs:
            return
        # An output nobody subscribes to is not built (what a reader matched later gets is the same: a volatile
        # writer keeps nothing for readers that join after).
        skeletons, poses, markers_on = (self.p(f"publish_{name}") and pubs[name].get_subscription_count() > 0
                                        for name in ("skeletons", "poses", "markers"))
        cdr = self._write_cdr
        # rclpy's message path: the joints' Point and Quaternion objects, built once and shared by the messages.
        parts = messages.joint_parts(persons) if persons and not cdr and (skeletons or poses or markers_on) else None
        if skeletons:
            pubs["skeletons"].publish(messages.skeleton_array_cdr(header, persons) if cdr else
                                      messages.skeleton_array(header, persons, parts))
        if poses:
            pubs["poses"].publish(messages.pose_array_cdr(header, persons) if cdr else
                                  messages.pose_array(header, persons, parts))
        if markers_on:
            shown = {int(p.person_id) for p in persons}
            # A track that ended while others go on: delete its markers, or RViz keeps them until their lifetime
            # ends (forever with marker_lifetime 0). Nobody: the array's DELETEALL clears everything.
            deleted = sorted(self._shown_ids - shown) if persons else []
            style = (float(self.p("marker_joint_radius")), float(self.p("marker_bone_width")),
                     float(self.p("marker_lifetime")), float(self.p("marker_alpha")))
            pubs["markers"].publish(messages.marker_array_cdr(header, persons, *style, deleted=deleted) if cdr else
                                    messages.marker_array(header, persons, *style, parts, deleted=deleted))
            self._shown_ids = shown
        if self.p("publish_debug_image") and pubs["debug_image"].get_subscription_count() > 0:
            pubs["debug_image"].publish(messages.rgb_to_image_msg(draw_persons_cv2(frame.rgb, persons), header))
        if self._tf is not None and persons:
            self._tf.send_persons(header, persons)

    def _publish_diagnostics(self) -> None:
        s = self.stats.snapshot()
        level, message = DiagnosticStatus.OK, "ok"
        if self._state != "active":
            level = DiagnosticStatus.WARN
            message = self._state + (f": {self._state_reason}" if self._state_reason else "")
        elif s["input_rate_hz"] == 0:
            level, message = DiagnosticStatus.WARN, "no input images" + (
                " (input images lost in transport: see lost_input)" if self._lost_input else "")
        elif s["processed_rate_hz"] == 0:
            level, message = DiagnosticStatus.WARN, "images arrive but none is processed"
        elif self._lost_input:
            level, message = DiagnosticStatus.WARN, "input images lost in transport (see lost_input)"
        est = self._pipeline.estimator if self._pipeline is not None else None
        values = {"state": self._state, **s, "lost_input": self._lost_input}
        values["backend"] = getattr(est, "backend_name", "")
        values["device"] = str(getattr(est, "device", ""))
        try:
            self._diag_pub.publish(messages.diagnostic_array(self.get_clock().now().to_msg(), DIAGNOSTIC_NAME, level,
                                                             message, values,
                                                             hardware_id=self.get_fully_qualified_name()))
        except RCLError:  # the context is going away (Ctrl-C): nothing to report to
            pass

    def _check_duplicate_name(self) -> None:
        self.destroy_timer(self._duplicate_timer)
        same = [1 for name, ns in self.get_node_names_and_namespaces()
                if name == self.get_name() and ns == self.get_namespace()]
        if len(same) > 1:
            self.get_logger().warning(
                f"{len(same)} nodes are named {self.get_fully_qualified_name()}: their parameters, lifecycle services "
                f"and outputs collide; start this one under another name (-r __node:=petr_node_2) or namespace "
                f"(-r __ns:=/camera2)")


def main(args: list[str] | None = None) -> int:
    """Entry point: `petr_node --ros-args --params-file config/petr.yaml`. Exit code 1 when autostart fails, 2 for
    invalid arguments; 0 after Ctrl-C (also during start-up) or the shutdown transition."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    noise = stderr_filter.install()  # MediaPipe's, TFLite's and libpng's lines; PETR_RAW_STDERR=1 keeps them
    try:
        return _run(args)
    finally:
        if noise is not None:
            noise.close()


def make_executor(context: Any = None) -> Any:
    """rclpy's C++ events executor where this rclpy has it (`PETR_EXECUTOR=single` picks the Python one): its
    per-callback cost is lower, and every image is a callback."""
    if os.environ.get("PETR_EXECUTOR", "events") == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor(context=context)
        except ImportError:  # an rclpy older than Jazzy
            pass
    return SingleThreadedExecutor(context=context)


MALLOC_MMAP_THRESHOLD = 32 << 20  # bytes (glibc's largest on 64-bit)
MALLOC_TRIM_THRESHOLD = 128 << 20


def tune_malloc() -> bool:
    """Let glibc recycle the image-sized buffers that every received image passes through (Fast DDS's sample,
    the deserialised message, its Python copy) instead of mapping fresh pages for each and unmapping them after:
    buffers up to 32 MB come from the heap, and up to 128 MB of freed heap is kept for the next image. Measured
    (1280x720 rgb8 at 60 Hz over the SHM profile, subscriber on one core): 6.0 -> 1.6 ms of CPU per received image;
    most of it was page faults. Larger images (over 32 MB) are still mapped and returned. False where this is not
    glibc or `PETR_MALLOC_DEFAULT=1` is set."""
    if os.environ.get("PETR_MALLOC_DEFAULT") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)
                    and libc.mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...): its defaults stay
        return False


def _run(args: list[str] | None) -> int:
    tune_malloc()
    if os.path.basename(os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")) == SHM_PROFILE_NAME:
        # Our profile's DYNAMIC reader memory only applies with this (config/fastdds_shm.xml says why).
        os.environ.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "1")
    try:
        rclpy.init(args=args)
    except RCLError as exc:  # malformed --ros-args (e.g. a -p without a value)
        print(f"[{NODE_NAME}] cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    node: PetrNode | None = None
    executor: Any = None
    code = 0
    try:
        node = PetrNode()
        if node.p("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                if rclpy.ok():
                    node.get_logger().error("could not configure (see the error above): exiting")
                    code = 1
                return code
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                if rclpy.ok():
                    node.get_logger().error("could not activate (see the error above): exiting")
                    code = 1
                return code
        # One executor for the node's life (rclpy.spin_once adds and removes the node on every call, i.e. on every
        # image).
        executor = make_executor()
        executor.add_node(node)
        while rclpy.ok() and not node.finished.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterException as exc:  # a bad value in the params file or a -p override
        print(f"[{NODE_NAME}] invalid parameter: {exc}", file=sys.stderr)
        code = 2
    except RCLError as exc:
        if rclpy.ok():  # a real failure (not Ctrl-C shutting the context down under a call)
            print(f"[{NODE_NAME}] {exc}", file=sys.stderr)
            code = 1
    finally:
        if node is not None:
            try:
                if executor is not None:
                    executor.remove_node(node)
                node._release_io()
                node.destroy_node()
            except BaseException as exc:  # noqa: BLE001 - the context may already be shut down by the signal handler
                if rclpy.ok():
                    print(f"[{NODE_NAME}] shutdown: {type(exc).__name__}: {exc}", file=sys.stderr)
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())

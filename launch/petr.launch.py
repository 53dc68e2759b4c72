"""Launch petr_node (and optionally RViz) with the shipped parameters and the Fast DDS shared-memory profile.

    ros2 launch petr_ros petr.launch.py image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info rviz:=true
    ros2 launch petr_ros petr.launch.py namespace:=front weights:=/path/to/lifter.pt backend:=hrnet \
        hrnet_weights:=/path/w32.pth publish_tf:=true

Every argument that sets a node parameter is empty by default, meaning "the value in params_file" (config/petr.yaml
unless you pass your own); only the arguments you give override it, converted to the parameter's type.
use_shm:=true (default) loads config/fastdds_shm.xml for the node (16 MB shared-memory segment: camera-sized
images without lost frames); every other process of the pipeline (camera driver, RViz) should load it too
(`export FASTDDS_DEFAULT_PROFILES_FILE=$(ros2 pkg prefix petr_ros)/share/petr_ros/config/fastdds_shm.xml`).
"""

from __future__ import annotations

from typing import Any

# launch argument -> the petr_node parameter it sets
ARGUMENT_TO_PARAMETER = {
    "image_topic": "image_topic",
    "input_type": "input_type",
    "input_reliability": "input_reliability",
    "camera_info_topic": "camera_info_topic",
    "use_camera_info": "use_camera_info",
    "detections_topic": "detections_topic",
    "weights": "lifter_checkpoint",
    "backend": "backend",
    "hrnet_weights": "hrnet_weights",
    "device": "device",
    "precision": "precision",
    "torch_threads": "torch_threads",
    "hrnet_runtime": "hrnet_runtime",
    "max_persons": "max_persons",
    "min_person_score": "min_person_score",
    "default_depth": "default_depth",
    "default_focal_length": "default_focal_length",
    "tracking": "tracking",
    "smoothing": "smoothing",
    "publish_tf": "publish_tf",
    "publish_debug_image": "publish_debug_image",
    "diagnostics_period": "diagnostics_period",
}
# the type of each of those parameters (the node declares the same ones)
ARGUMENT_TYPES = {
    "image_topic": "str", "input_type": "str", "input_reliability": "str", "camera_info_topic": "str",
    "use_camera_info": "bool", "detections_topic": "str", "weights": "str", "backend": "str", "hrnet_weights": "str",
    "device": "str", "precision": "str", "torch_threads": "int", "hrnet_runtime": "str",
    "max_persons": "int", "min_person_score": "float",
    "default_depth": "float", "default_focal_length": "float", "tracking": "bool", "smoothing": "bool",
    "publish_tf": "bool", "publish_debug_image": "bool", "diagnostics_period": "float",
}
# arguments of the launch itself, not petr_node parameters
LAUNCH_ONLY_ARGUMENTS = ("params_file", "namespace", "node_name", "use_sim_time", "rviz", "use_shm")

_DESCRIPTIONS = {
    "image_topic": "input image topic (raw) or base topic (compressed: <topic>/compressed)",
    "input_type": "raw | compressed",
    "input_reliability": "best_effort | reliable (QoS of the image subscription)",
    "camera_info_topic": "sensor_msgs/CameraInfo topic (metric placement; without it: default depth)",
    "use_camera_info": "true | false: use CameraInfo intrinsics when received",
    "detections_topic": "optional petr_ros_msgs/PersonBoxes input",
    "weights": "lifter checkpoint (.pt); params file default: the one shipped in the package",
    "backend": "auto | hrnet | mediapipe",
    "hrnet_weights": "HRNet-W32 weights (pose_hrnet_w32_256x192.pth) for backend hrnet",
    "device": "auto | cpu | cuda | cuda:N",
    "precision": "auto | fp32 | fp16 | bf16",
    "torch_threads": "CPU threads for PyTorch (0: PyTorch's default)",
    "hrnet_runtime": "torch | onnxruntime | openvino | auto (who runs the HRNet backbone on the CPU)",
    "max_persons": "publish at most this many people per frame",
    "min_person_score": "minimum mean keypoint confidence of a published person",
    "default_depth": "metres to the pelvis without CameraInfo",
    "default_focal_length": "focal length (px) without CameraInfo (0: 60 degree field of view)",
    "tracking": "true | false: keep person ids across frames",
    "smoothing": "true | false: One-Euro smoothing per tracked person",
    "publish_tf": "true | false: TF frames body_<id> and <joint>_<id> on /tf",
    "publish_debug_image": "true | false: ~/debug_image with the 2D keypoints",
    "diagnostics_period": "seconds between /diagnostics messages",
}


def parameter_overrides(values: dict[str, str]) -> dict[str, Any]:
    """Launch argument values -> {parameter: typed value} for the arguments that were given (non-empty).
    ValueError naming the argument for a value of the wrong type."""
    out: dict[str, Any] = {}
    for arg, param in ARGUMENT_TO_PARAMETER.items():
        text = values.get(arg, "").strip()
        if not text:
            continue
        kind = ARGUMENT_TYPES[arg]
        try:
            if kind == "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                out[param] = text.lower() == "true"
            elif kind == "int":
                out[param] = int(text)
            elif kind == "float":
                out[param] = float(text)
            else:
                out[param] = text
        except ValueError as exc:
            raise ValueError(f"launch argument {arg}:={text!r} is not a valid {kind} ({exc})") from None
    return out


def generate_launch_description() -> Any:
    # Imported here so that parameter_overrides stays usable (and testable) where launch_ros is not installed.
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node

    from launch import LaunchDescription

    share = get_package_share_directory("petr_ros")
    config = PathJoinSubstitution([share, "config"])
    args = [DeclareLaunchArgument(arg, default_value="", description=f"{_DESCRIPTIONS[arg]} (empty: params_file's)")
            for arg in ARGUMENT_TO_PARAMETER]
    args += [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config, "petr.yaml"]),
                              description="petr_node parameters (YAML)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("node_name", default_value="petr_node", description="name of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: follow /clock (bag playback with petr_bag_play --clock)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/petr.rviz"),
        DeclareLaunchArgument("use_shm", default_value="true",
                              description="load config/fastdds_shm.xml (16 MB shared-memory segment) for Fast DDS"),
    ]
    shm = SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([config, "fastdds_shm.xml"]),
                                 condition=IfCondition(LaunchConfiguration("use_shm")))

    def make_node(context: Any) -> list[Any]:
        values = {arg: LaunchConfiguration(arg).perform(context) for arg in ARGUMENT_TO_PARAMETER}
        overrides = parameter_overrides(values)
        overrides["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context).lower() == "true"
        return [Node(
            package="petr_ros",
            executable="petr_node",
            name=LaunchConfiguration("node_name"),
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), overrides],
        )]

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([config, "petr.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*args, shm, OpaqueFunction(function=make_node), rviz])

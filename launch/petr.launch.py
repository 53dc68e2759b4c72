"""Launch petr_node (and optionally RViz) with the shipped parameters and Fast DDS shared-memory profile.

    ros2 launch petr_ros petr.launch.py image_topic:=/camera/color/image_raw rviz:=true
    ros2 launch petr_ros petr.launch.py weights:=/path/to/lifter.pt backend:=hrnet hrnet_weights:=/path/w32.pth

Arguments that set a node parameter default to the value in config/petr.yaml, so the params file stays the one
place for defaults (test_ros_launch checks this).
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

# launch argument -> the petr_node parameter it sets
ARGUMENT_TO_PARAMETER = {
    "image_topic": "image_topic",
    "input_type": "input_type",
    "weights": "lifter_checkpoint",
    "backend": "backend",
    "hrnet_weights": "hrnet_weights",
    "device": "device",
}
# arguments of the launch itself, not node parameters
LAUNCH_ONLY_ARGUMENTS = ("params_file", "rviz", "use_shm")


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("petr_ros")
    config = PathJoinSubstitution([share, "config"])
    args = [
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="input image topic (raw) or base topic (compressed: <topic>/compressed)"),
        DeclareLaunchArgument("input_type", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("weights", default_value="",
                              description="lifter checkpoint (.pt); empty: the one shipped in the package"),
        DeclareLaunchArgument("backend", default_value="auto", description="auto | hrnet | mediapipe"),
        DeclareLaunchArgument("hrnet_weights", default_value="",
                              description="HRNet-W32 weights (pose_hrnet_w32_256x192.pth) for backend hrnet"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config, "petr.yaml"]),
                              description="petr_node parameters (YAML)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/petr.rviz"),
        DeclareLaunchArgument("use_shm", default_value="true",
                              description="load config/fastdds_shm.xml (16 MB shared-memory segment) for Fast DDS"),
    ]
    shm = SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([config, "fastdds_shm.xml"]),
                                 condition=IfCondition(LaunchConfiguration("use_shm")))
    overrides = {param: ParameterValue(LaunchConfiguration(arg), value_type=str)
                 for arg, param in ARGUMENT_TO_PARAMETER.items()}
    node = Node(
        package="petr_ros",
        executable="petr_node",
        name="petr_node",
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([config, "petr.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*args, shm, node, rviz])

"""launch/petr.launch.py, config/petr.rviz and config/fastdds_shm.xml.

`launch_ros` has no wheel, so where it is absent the launch file is checked statically (it parses, every declared
argument maps to a real parameter in config/petr.yaml with the same default, every file it names is shipped); where
it imports (a ROS install), its LaunchDescription is built for real too.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "petr.launch.py"


def _yaml_params() -> dict:
    """The parameters of config/petr.yaml (keyed `/**:` for any node name, or `petr_node:`)."""
    doc = yaml.safe_load((REPO / "config" / "petr.yaml").read_text())
    (section,) = doc.values()
    return section["ros__parameters"]


def _launch_module():
    """The launch file as a module: its ROS launch imports are inside generate_launch_description, so the tables
    and parameter_overrides load without launch_ros."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("petr_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared_literal_arguments() -> set[str]:
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    return {ast.literal_eval(node.args[0]) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument"
            and isinstance(node.args[0], ast.Constant)}


def test_every_launch_argument_maps_to_a_real_parameter_of_the_right_type() -> None:
    launch = _launch_module()
    params = _yaml_params()
    mapping, types = launch.ARGUMENT_TO_PARAMETER, launch.ARGUMENT_TYPES
    assert {"image_topic", "camera_info_topic", "weights", "device", "publish_tf"} <= set(mapping)
    assert {"params_file", "namespace", "node_name", "use_sim_time", "rviz", "use_shm"} == set(
        launch.LAUNCH_ONLY_ARGUMENTS)
    assert set(types) == set(mapping) and not set(mapping) & set(launch.LAUNCH_ONLY_ARGUMENTS)
    assert _declared_literal_arguments() == set(launch.LAUNCH_ONLY_ARGUMENTS)
    for arg, param in mapping.items():
        assert param in params, f"launch argument {arg} sets {param}, which config/petr.yaml does not have"
        assert type(params[param]).__name__ == types[arg], f"{arg}: {types[arg]} but {param} is {params[param]!r}"


def test_only_given_arguments_override_the_params_file() -> None:
    launch = _launch_module()
    assert launch.parameter_overrides({arg: "" for arg in launch.ARGUMENT_TO_PARAMETER}) == {}
    got = launch.parameter_overrides({"camera_info_topic": "/cam/camera_info", "default_depth": "2",
                                      "max_persons": "3", "publish_tf": "True", "weights": "/w/l.pt"})
    assert got == {"camera_info_topic": "/cam/camera_info", "default_depth": 2.0, "max_persons": 3,
                   "publish_tf": True, "lifter_checkpoint": "/w/l.pt"}
    assert type(got["default_depth"]) is float
    with pytest.raises(ValueError, match="max_persons:='three' is not a valid int"):
        launch.parameter_overrides({"max_persons": "three"})
    with pytest.raises(ValueError, match="publish_tf:='yes' is not a valid bool"):
        launch.parameter_overrides({"publish_tf": "yes"})


def test_launch_file_names_shipped_files_and_the_node_entry_point() -> None:
    text = LAUNCH.read_text()
    for name in ("petr.yaml", "petr.rviz", "fastdds_shm.xml"):
        assert f'"{name}"' in text and (REPO / "config" / name).is_file()
    assert 'executable="petr_node"' in text
    setup = (REPO / "setup.py").read_text()
    assert "petr_node = petr_ros.ros.node:main" in setup
    assert '"FASTDDS_DEFAULT_PROFILES_FILE"' in text


def test_yaml_mirrors_node_declarations() -> None:
    from petr_ros.ros.node import PARAMS

    params = _yaml_params()
    assert set(params) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert params[p.name] == p.default and type(params[p.name]) is type(p.default), p.name


def test_rviz_config_shows_markers_poses_and_image() -> None:
    cfg = yaml.safe_load((REPO / "config" / "petr.rviz").read_text())
    displays = {d["Class"]: d for d in cfg["Visualization Manager"]["Displays"]}
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/petr_node/markers"
    assert displays["rviz_default_plugins/PoseArray"]["Topic"]["Value"] == "/petr_node/poses"
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"].startswith("/")


def test_fastdds_profile_has_a_16mb_shm_segment_and_udp() -> None:
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(REPO / "config" / "fastdds_shm.xml").getroot()
    descriptors = root.iter(f"{{{ns['d']}}}transport_descriptor")
    transports = {t.findtext("d:transport_id", namespaces=ns): t for t in descriptors}
    types = {t.findtext("d:type", namespaces=ns) for t in transports.values()}
    assert types == {"SHM", "UDPv4"}
    shm = next(t for t in transports.values() if t.findtext("d:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=ns)) == 16 * 1024 * 1024
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"
    used = [e.text for e in participant.findall(".//d:userTransports/d:transport_id", ns)]
    assert sorted(used) == sorted(transports)


def test_launch_description_builds_with_launch_ros() -> None:
    pytest.importorskip("launch_ros")
    launch = _launch_module()
    ld = launch.generate_launch_description()
    declared = {a.name for a in ld.get_launch_arguments()}
    assert declared == set(launch.ARGUMENT_TO_PARAMETER) | set(launch.LAUNCH_ONLY_ARGUMENTS)

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
    return yaml.safe_load((REPO / "config" / "petr.yaml").read_text())["petr_node"]["ros__parameters"]


def _launch_ast() -> tuple[dict[str, str | None], dict[str, str], tuple[str, ...], ast.Module]:
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    declared: dict[str, str | None] = {}
    mapping: dict[str, str] = {}
    launch_only: tuple[str, ...] = ()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = ast.literal_eval(node.args[0])
            default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
            declared[name] = ast.literal_eval(default) if isinstance(default, ast.Constant) else None
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "ARGUMENT_TO_PARAMETER":
                mapping = ast.literal_eval(node.value)
            elif node.targets[0].id == "LAUNCH_ONLY_ARGUMENTS":
                launch_only = ast.literal_eval(node.value)
    return declared, mapping, launch_only, tree


def test_every_launch_argument_maps_to_a_real_parameter() -> None:
    declared, mapping, launch_only, _ = _launch_ast()
    params = _yaml_params()
    assert {"image_topic", "weights", "device", "params_file", "rviz"} <= set(declared)
    assert set(declared) == set(mapping) | set(launch_only), "every argument is a parameter or a launch option"
    assert not set(mapping) & set(launch_only)
    for arg, param in mapping.items():
        assert param in params, f"launch argument {arg} sets {param}, which config/petr.yaml does not have"
        # Same default as the params file, so launching without the argument changes nothing.
        assert declared[arg] == params[param], f"{arg}: launch default {declared[arg]!r} != yaml {params[param]!r}"


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
    import importlib.util

    spec = importlib.util.spec_from_file_location("petr_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    declared, _, _, _ = _launch_ast()
    assert {a.name for a in ld.get_launch_arguments()} == set(declared)

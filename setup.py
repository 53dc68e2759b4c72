"""ament_python set-up for petr_ros (colcon in a ROS 2 workspace, pip in the project's .venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "petr_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    package_data={PACKAGE: ["data/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    # optimised CPU runtimes for the HRNet backbone (requirements/cpu-runtime.txt has the tested pins)
    extras_require={"cpu-runtime": ["onnx>=1.17,<1.18", "onnxruntime>=1.20", "openvino>=2024.0"]},
    zip_safe=False,
    maintainer="petr_ros maintainers",
    maintainer_email="maintainers@petr-ros.dev",
    description="Monocular 3D human pose (PETR/PEBRT) for ROS 2: skeleton markers, joint rotations, training.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "petr_node = petr_ros.ros.node:main",
            "petr_bag_play = petr_ros.ros.bag:play_main",
            "petr_bag_record = petr_ros.ros.bag:record_main",
            "petr_demo = petr_ros.ros.demo:main",
            "petr_train = training.cli:main",
            # `ros2 run petr_ros train ...` in a ROS install
            "train = training.cli:main",
        ],
    },
)

"""petr_ros: monocular 3D human pose (PETR / PEBRT) for ROS 2.

The pure-logic modules (skeleton, kinematics, metrics, model, pre/post-processing, estimator) never import rclpy;
the ROS 2 adapter lives in petr_ros.ros.
"""

__version__ = "0.1.0"

"""Helpers of the command-line tools (demo, benchmarks) that are not ROS adapters: video frames, the demo's
pictures and summary. No rclpy here."""

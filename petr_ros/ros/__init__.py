"""The ROS 2 adapter of petr_ros: the lifecycle node (`node`), message builders (`messages`) and MCAP bag
play/record (`bag`). The only part of the package that imports rclpy."""

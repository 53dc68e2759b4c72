"""PETR networks: the HRNet-W32 2D backbone, heatmap decoders, the PETR/PEBRT lifters and their checkpoints."""

"""petr_ros.model.runtime: ONNX export of HRNet-W32 and the lifter, run by ONNX Runtime / OpenVINO, against
PyTorch on the same (random) weights; and the PyTorch fallback with its reasons."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from petr_ros.frontends.hrnet import HRNetFrontEnd
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_lifter
from petr_ros.model.hrnet import HRNetW32
from petr_ros.model.runtime import AUTO_ORDER, build_runtime, export_onnx, installed

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
CPU_RUNTIMES = [
    pytest.param(name, marks=pytest.mark.skipif(not installed(name), reason=f"{name} not installed (.[cpu-runtime])"))
    for name in ("onnxruntime", "openvino")
]
needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed (.[cpu-runtime])")


@functools.cache
def _hrnet() -> nn.Module:
    torch.manual_seed(3)
    return HRNetW32().eval()


class _Joints(nn.Module):
    """The lifter's joints3d as the one output an ONNX graph has."""

    def __init__(self, lifter: nn.Module) -> None:
        super().__init__()
        self.lifter = lifter

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.lifter(keypoints).joints3d


@pytest.mark.parametrize("name", CPU_RUNTIMES)
def test_hrnet_export_agrees_with_pytorch_heatmaps_and_keypoints(name: str) -> None:
    model = _hrnet()
    torch_end = HRNetFrontEnd(model=model, device="cpu", tracking=False)
    runtime_end = HRNetFrontEnd(model=model, device="cpu", tracking=False, runtime=name)
    assert torch_end.runtime.name == "torch"
    assert runtime_end.runtime.name == name, runtime_end.runtime.reason
    assert "max |difference|" in runtime_end.runtime.reason
    # heatmaps, at another batch size than the export's
    x = torch.randn(3, 3, 256, 192, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        reference = model(x)
    heat = runtime_end.heatmaps(x)
    assert heat.shape == reference.shape == (3, 17, 64, 48)
    diff = float((heat - reference).abs().max())
    print(f"{name}: max |heatmap difference| to PyTorch {diff:.3e} (heatmaps up to {float(reference.abs().max()):.3f})")
    assert diff < 1e-4 * float(reference.abs().max())
    # keypoints of a real image through the whole front end
    image = cv2.cvtColor(cv2.imread(str(ASSETS / "messi5.jpg")), cv2.COLOR_BGR2RGB)
    boxes = np.array([[150.0, 40.0, 330.0, 340.0], [20.0, 60.0, 200.0, 330.0]], dtype=np.float32)
    ours, theirs = torch_end.detect(image, boxes), runtime_end.detect(image, boxes)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs, strict=True):
        px = float(np.abs(a.keypoints - b.keypoints).max())
        print(f"{name}: max keypoint difference {px:.2e} px")
        assert px < 1e-2
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


@pytest.mark.parametrize("name", CPU_RUNTIMES)
def test_lifter_export_agrees_with_pytorch(name: str) -> None:
    lifter, _ = load_lifter(DEFAULT_LIFTER_PATH, torch.device("cpu"))
    model = _Joints(lifter).eval()
    runtime = build_runtime(model, name, torch.zeros(1, 17, 2))
    assert runtime.name == name, runtime.reason
    x = torch.randn(5, 17, 2, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        reference = model(x)
    diff = float((runtime(x) - reference).abs().max())
    print(f"{name}: lifter max |joint difference| {diff:.2e} m")
    assert diff < 1e-5


@needs_onnx
def test_export_writes_a_loadable_file_with_a_dynamic_batch(tmp_path: Path) -> None:
    import onnx

    path = export_onnx(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), tmp_path / "net.onnx", torch.zeros(1, 3, 8, 8))
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 8, 8]


class _NoOnnxForm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]


def test_fallbacks_say_why() -> None:
    model = nn.Sequential(nn.Linear(4, 2))
    example = torch.zeros(1, 4)
    assert build_runtime(model, "torch", example).name == "torch"
    on_cuda = build_runtime(model, "onnxruntime", example, device="cuda")
    assert on_cuda.name == "torch" and "only the CPU" in on_cuda.reason
    bf16 = build_runtime(model, "openvino", example, precision=torch.bfloat16)
    assert bf16.name == "torch" and "fp32 only" in bf16.reason
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        build_runtime(model, "tensorrt", example)
    for name in ("onnxruntime", "openvino"):
        chosen = build_runtime(model, name, example)
        if installed(name):
            assert chosen.name == name
        else:
            assert chosen.name == "torch" and "not installed" in chosen.reason
    auto = build_runtime(model, "auto", example)
    available = [r for r in AUTO_ORDER if installed(r)]
    assert auto.name == (available[0] if available else "torch"), auto.reason


@needs_onnx
def test_an_unexportable_model_falls_back_to_pytorch() -> None:
    chosen = build_runtime(_NoOnnxForm(), "onnxruntime", torch.randn(2, 3, 3))
    assert chosen.name == "torch"
    assert "linalg_eigh" in chosen.reason and "export" in chosen.reason
    x = torch.randn(2, 3, 3)
    torch.testing.assert_close(chosen(x), _NoOnnxForm()(x))

"""petr_ros.model.inference: BatchNorm folded into the convolutions (and the TorchScript / torch.compile forms) agree
with the trained HRNet-W32; the HRNet front end runs the folded form by default; the fallbacks say why."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from petr_ros.frontends.hrnet import HRNetFrontEnd
from petr_ros.model import inference
from petr_ros.model.heatmap import decode_heatmaps
from petr_ros.model.hrnet import HRNetW32
from petr_ros.model.inference import (
    BranchParallelHRNet,
    PackedBasicBlock,
    PackedBottleneck,
    PackedConv,
    batchnorm_count,
    default_form,
    fold_batchnorm,
    optimise,
    pack_hrnet,
    packing_available,
)
from petr_ros.model.runtime import build_runtime

torch.set_num_threads(1)  # 2 shared cores
SIZE = (96, 64)  # (H, W): small, divisible by 32 (HRNet's four halvings below the 1/4 stem)


@functools.cache
def _hrnet() -> HRNetW32:
    """Random-weight HRNet-W32 with non-trivial BatchNorm statistics and affines (a fresh BN is the identity-ish
    map mean 0, var 1, which would hide a wrong fold)."""
    torch.manual_seed(5)
    model = HRNetW32().eval()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
    return model


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two intra-op threads (what the branch-parallel form needs), the module's one thread afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _image(seed: int = 1, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def _argmax_pixels(heatmaps: torch.Tensor) -> np.ndarray:
    coords, _ = decode_heatmaps(heatmaps, "argmax")
    return coords.numpy()


def test_fold_batchnorm_removes_every_batchnorm_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    model = _hrnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, count = fold_batchnorm(model)
    assert count == 292 == batchnorm_count(model)  # every BatchNorm of HRNet-W32 follows a convolution
    assert batchnorm_count(folded) == 0
    # the trained module is untouched: same layout (the official state dict keeps loading strictly), same values
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    x = _image()
    with torch.inference_mode():
        reference, got = model(x), folded(x)
    diff = float((got - reference).abs().max())
    scale = float(reference.abs().max())
    with capsys.disabled():
        print(f"\nfolded vs eager HRNet-W32: max |heatmap difference| {diff:.2e} (heatmaps up to {scale:.3g})")
    assert diff <= 1e-4 * scale
    # keypoints (argmax of the 1/4-resolution heatmaps): the same cells
    assert np.abs(_argmax_pixels(got) - _argmax_pixels(reference)).max() <= 1.0


def test_fold_handles_sequential_and_named_pairs_only() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4)
            self.bn_alone = nn.BatchNorm2d(4)  # follows nothing: stays
            self.seq = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.seq(self.bn_alone(self.bn1(self.conv1(x))))

    block = Block().eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folded, count = fold_batchnorm(block)
    assert count == 2 and batchnorm_count(folded) == 2
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.seq[1], nn.Identity)
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), block(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", ["eager", "fused", "jit"])
def test_forms_agree_with_eager_on_another_batch(form: str) -> None:
    model = _hrnet()
    built = optimise(model, form, torch.zeros(1, 3, *SIZE))
    assert built.form == form, built.reason
    assert "max |difference| to eager" in built.reason and "fallback" not in built.reason
    x = _image(seed=2, batch=3)  # another batch size than the example's
    with torch.inference_mode():
        reference = model(x)
        got = built(x)
    assert got.shape == reference.shape and got.is_contiguous()
    assert float((got - reference).abs().max()) <= 1e-4 * float(reference.abs().max())
    if form == "fused":
        assert batchnorm_count(built.module) == 0 and built.module is not model


def test_parallel_form_runs_branches_on_a_second_thread_and_agrees(two_threads: None) -> None:
    model = _hrnet()
    assert default_form(model) == "parallel" and default_form(model, "cuda") == "fused"
    assert default_form(model, threads=1) == "fused" and default_form(nn.Linear(2, 2)) == "fused"
    built = optimise(model, "parallel", torch.zeros(1, 3, *SIZE))
    assert built.form == "parallel", built.reason
    parallel = built.module
    assert isinstance(parallel, BranchParallelHRNet) and parallel._worker is not None  # the check used it
    assert batchnorm_count(parallel) == 0
    if packing_available():  # the two threads run the prepacked copy
        assert parallel.packed is not None and "prepacked oneDNN convolutions" in built.reason, built.reason
    seen: set[str] = set()
    # a branch the second thread runs (0 + 3 here, 1 + 2 there)
    block = (parallel.packed or parallel.hrnet).stage4[0].branches[2]
    hook = block.register_forward_hook(lambda *_: seen.add(threading.current_thread().name))
    for batch in (1, 3):
        x = _image(seed=4, batch=batch)
        with torch.inference_mode():
            reference = model(x)
            got = built(x)
        assert float((got - reference).abs().max()) <= 1e-4 * float(reference.abs().max())
    hook.remove()
    assert seen and all(name.startswith("petr-hrnet-branch") for name in seen)
    assert torch.get_num_threads() == 2  # the caller's thread count is back
    torch.set_num_threads(1)  # one thread: the plain forward of the folded module, on this thread
    seen.clear()
    block = parallel.hrnet.stage4[0].branches[2]
    hook = block.register_forward_hook(lambda *_: seen.add(threading.current_thread().name))
    with torch.inference_mode():
        built(_image(seed=4, batch=1))
    hook.remove()
    assert seen == {threading.current_thread().name}


def test_parallel_stem_split_by_rows_is_exact(two_threads: None) -> None:
    parallel = optimise(_hrnet(), "parallel", torch.zeros(1, 3, *SIZE)).module
    assert parallel._stem_rows(SIZE[0]) == (12, 4, 28) and parallel._stem_rows(256) == (32, 4, 108)
    assert parallel._stem_rows(32) is None  # too few rows for the halo: one pass
    h = parallel.hrnet
    for height in (SIZE[0], 32):
        x = torch.randn(2, 3, height, SIZE[1]).contiguous(memory_format=torch.channels_last)
        torch.set_num_threads(1)  # as inside the forward
        with torch.inference_mode():
            whole = h.layer1(h.relu(h.bn2(h.conv2(h.relu(h.bn1(h.conv1(x)))))))
            split = parallel._stem(x)
        torch.set_num_threads(2)
        assert split.shape == whole.shape
        torch.testing.assert_close(split, whole, atol=1e-6, rtol=1e-6)


class _Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"branch failed on {threading.current_thread().name}")


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("where", ["worker", "caller", "split chain"])
def test_parallel_form_errors_propagate_without_hanging(two_threads: None, where: str, packed: bool) -> None:
    if packed and not packing_available():
        pytest.skip("no oneDNN prepacked convolutions in this PyTorch")
    folded = fold_batchnorm(_hrnet())[0].requires_grad_(False).to(memory_format=torch.channels_last)
    parallel = BranchParallelHRNet(folded, example=_image(batch=1) if packed else None)
    assert (parallel.packed is not None) == packed, parallel.packed_reason
    stage3 = (parallel.packed if packed else parallel.hrnet).stage3[0].branches
    if where == "worker":
        stage3[1] = _Fails()  # runs on the worker
    elif where == "caller":
        stage3[0] = _Fails()  # runs on the calling thread
    else:
        stage3[2][0] = _Fails()  # the first half of branch 2: the worker waits for it
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with torch.inference_mode():
                parallel(_image(batch=1))
        except RuntimeError as err:
            errors.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the branch-parallel forward hung after an error"
    assert len(errors) == 1 and "branch failed" in str(errors[0])


@pytest.mark.skipif(not packing_available(), reason="no oneDNN prepacked convolutions in this PyTorch")
def test_prepacked_hrnet_agrees_with_eager(two_threads: None, capsys: pytest.CaptureFixture[str]) -> None:
    model = _hrnet()
    folded = fold_batchnorm(model)[0].to(memory_format=torch.channels_last)
    packed = pack_hrnet(folded, _image(batch=1).contiguous(memory_format=torch.channels_last))
    kinds = {type(m) for m in packed.modules()}
    assert {PackedConv, PackedBasicBlock, PackedBottleneck} <= kinds
    # every convolution is prepacked, every ReLU after one fused
    assert not any(isinstance(m, nn.Conv2d) for m in packed.modules())
    fused_relu = sum(isinstance(m, PackedConv) and m.attr == "relu" for m in packed.modules())
    # stem 2, Bottlenecks 4 x 2, transitions 2 + 1 + 1, BasicBlocks' conv1 (8 + 48 + 48), exchange paths 4 + 8
    assert fused_relu == 2 + 8 + 4 + 104 + 12
    assert batchnorm_count(packed) == 0 and isinstance(packed.final_layer, PackedConv)
    parallel = BranchParallelHRNet(folded, example=_image(batch=1))
    assert parallel.packed is not None, parallel.packed_reason
    for batch, size in ((1, SIZE), (3, (64, 96))):  # another batch and shape than the weights were laid out for
        x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
        xl = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            reference = model(x)
            own = packed(xl)  # the prepacked copy's own (HRNet) forward
            two = parallel(xl)  # the two threads' schedule with the exchange sums fused too
        scale = float(reference.abs().max())
        for got in (own, two):
            assert got.shape == reference.shape
            assert float((got - reference).abs().max()) <= 1e-5 * scale
        with capsys.disabled():
            print(f"\nprepacked vs eager HRNet-W32 {tuple(x.shape)}: max |heatmap difference| own forward "
                  f"{float((own - reference).abs().max()):.2e}, two threads {float((two - reference).abs().max()):.2e}"
                  f" (heatmaps up to {scale:.3g})")
    assert torch.get_num_threads() == 2


def test_parallel_form_without_prepacking_runs_the_folded_module(two_threads: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = _hrnet()
    example = torch.zeros(1, 3, *SIZE)
    x = _image(seed=3, batch=1)
    with torch.inference_mode():
        reference = model(x)
    monkeypatch.setattr(inference, "packing_available", lambda: False)  # a PyTorch without the oneDNN ops
    built = optimise(model, "parallel", example)
    assert built.form == "parallel" and built.module.packed is None
    assert "not prepacked: oneDNN prepacked convolutions unavailable" in built.reason, built.reason
    with torch.inference_mode():
        assert float((built(x) - reference).abs().max()) <= 1e-5 * float(reference.abs().max())
    monkeypatch.setattr(inference, "packing_available", lambda: True)

    def refuses(*_a: object) -> nn.Module:
        raise RuntimeError("reorder refused")

    monkeypatch.setattr(inference, "pack_hrnet", refuses)  # the ops there but failing: the folded module runs
    built = optimise(model, "parallel", example)
    assert built.form == "parallel" and built.module.packed is None
    assert "prepacking failed: RuntimeError: reorder refused" in built.reason
    with torch.inference_mode():
        assert float((built(x) - reference).abs().max()) <= 1e-5 * float(reference.abs().max())
    # a prepacked copy that computes something else is caught at build time: the folded module runs
    monkeypatch.setattr(inference, "pack_hrnet", lambda *_a: nn.Sequential(nn.Conv2d(3, 17, 4, stride=4)).eval())
    built = optimise(model, "parallel", example)
    assert built.form == "parallel" and built.module.packed is None
    assert "the prepacked copy disagrees with the folded module" in built.reason, built.reason
    with torch.inference_mode():
        assert float((built(x) - reference).abs().max()) <= 1e-5 * float(reference.abs().max())
    # under autocast the folded module runs, never the fp32 prepacked kernels
    monkeypatch.undo()
    built = optimise(model, "parallel", example)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert built.module(x.contiguous(memory_format=torch.channels_last)).dtype == torch.bfloat16


@pytest.mark.slow
def test_compile_form_agrees_with_eager() -> None:
    """The torch.compile form's code path on a small conv-BN-ReLU net (compiling HRNet-W32 takes about a minute on
    two cores; benchmarks/benchmark_model.py --only backbone prints its agreement)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
        model[4].running_mean.uniform_(-1.0, 1.0)
    example = torch.zeros(1, 3, 16, 16)
    built = optimise(model, "compile", example)
    if built.form != "compile":  # no C++ compiler, or inductor unsupported here: the fallback is the folded form
        assert built.form == "fused" and "compile failed" in built.reason
        pytest.skip(f"torch.compile unavailable here: {built.reason}")
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        reference = model(x)
        got = built(x)
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=1e-5)


def test_fallbacks_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _hrnet()
    example = torch.zeros(1, 3, *SIZE)
    with pytest.raises(ValueError, match="unknown inference form 'tensorrt'"):
        optimise(model, "tensorrt", example)

    def no_trace(*_a: object, **_k: object) -> None:
        raise RuntimeError("tracing refused")

    monkeypatch.setattr(torch.jit, "trace", no_trace)
    built = optimise(model, "jit", example)
    assert built.form == "fused" and "jit failed: RuntimeError: tracing refused" in built.reason
    monkeypatch.setattr(torch, "compile", no_trace)
    built = optimise(model, "compile", example)
    assert built.form == "fused" and "compile failed" in built.reason
    # the TorchScript form runs full precision only: with autocast it is the folded form
    bf16 = optimise(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval(), "jit", torch.zeros(1, 3, 8, 8),
                    precision=torch.bfloat16)
    assert bf16.form == "fused" and "full precision only" in bf16.reason
    with torch.inference_mode():
        assert bf16(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16  # checked in fp32, run under autocast

    # a fold that computes something else is caught by the check and the eager module runs
    def broken_fold(m: nn.Module) -> tuple[nn.Module, int]:
        return nn.Sequential(nn.Conv2d(3, 17, 4, stride=4)).eval(), 0

    monkeypatch.setattr(inference, "fold_batchnorm", broken_fold)
    built = optimise(model, "fused", example)
    assert built.form == "eager" and "fused disagrees with eager" in built.reason


def test_runtime_names_map_to_forms(two_threads: None) -> None:
    model = _hrnet()
    example = torch.zeros(1, 3, *SIZE)
    assert build_runtime(model, "torch", example).form == "parallel"  # HRNet, CPU, 2 threads
    assert build_runtime(nn.Sequential(nn.Conv2d(3, 4, 3)), "torch", example).form == "fused"  # not an HRNet
    assert build_runtime(model, "torch-eager", example).form == "eager"
    assert build_runtime(model, "torch-fused", example).form == "fused"
    assert build_runtime(model, "torch-parallel", example).form == "parallel"
    jit = build_runtime(model, "torch-jit", example)
    assert jit.name == "torch" and jit.form == "jit" and "TorchScript" in jit.reason
    # a CPU runtime that cannot serve the request falls back to PyTorch's default (folded) form
    on_cuda = build_runtime(model, "onnxruntime", example, device="cuda")  # the model is on the CPU here
    assert on_cuda.name == "torch" and on_cuda.form == "parallel" and "only the CPU" in on_cuda.reason
    torch.set_num_threads(1)
    assert build_runtime(model, "torch", example).form == "fused"  # one thread: nothing to run branches on


def test_front_end_runs_the_parallel_folded_form_and_keeps_the_trained_module(two_threads: None) -> None:
    model = _hrnet()
    image = (np.random.default_rng(0).random((120, 90, 3)) * 255).astype(np.uint8)
    boxes = np.array([[5.0, 5.0, 80.0, 110.0], [20.0, 10.0, 70.0, 90.0]])
    size = (SIZE[1], SIZE[0])  # the front end's input_size is (width, height)
    fused_end = HRNetFrontEnd(model=model, device="cpu", tracking=False, input_size=size)
    eager_end = HRNetFrontEnd(model=model, device="cpu", tracking=False, input_size=size, runtime="torch-eager")
    assert fused_end.runtime.name == "torch" and fused_end.runtime.form == "parallel", fused_end.runtime.reason
    assert "BatchNorm folded" in fused_end.runtime.reason and "branches on 2 threads" in fused_end.runtime.reason
    assert eager_end.runtime.form == "eager"
    assert fused_end.model is model and batchnorm_count(fused_end.model) == 292  # state dict as trained
    got, ref = fused_end.detect(image, boxes), eager_end.detect(image, boxes)
    assert len(got) == len(ref) == 2
    for a, b in zip(got, ref, strict=True):
        assert np.abs(a.keypoints - b.keypoints).max() < 1e-2  # pixels
        assert np.abs(a.scores - b.scores).max() < 1e-4
    # new weights reach the folded form only when it is rebuilt
    other = HRNetW32().eval()
    fused_end.model = other
    fused_end.rebuild_runtime()
    eager_other = HRNetFrontEnd(model=other, device="cpu", tracking=False, input_size=size, runtime="torch-eager")
    got = fused_end.detect(image, boxes)
    ref = eager_other.detect(image, boxes)
    assert np.abs(got[0].keypoints - ref[0].keypoints).max() < 1e-2

"""Inference-time forms of a convolutional network in PyTorch (the HRNet backbone's `torch*` runtimes).

A trained network in eval mode computes ``bn(conv(x))`` with fixed statistics: an affine map per channel that can
be folded into the convolution's weights and bias once (`fold_batchnorm`). That removes every BatchNorm kernel,
and on the CPU the OpenMP parallel region each one opens, which is what `OMP_WAIT_POLICY=PASSIVE` (scripts/env.sh)
pays for: each region wakes the sleeping worker thread (docs/model.md "Threads"). HRNet-W32 at batch 1 opens
1,758 regions per forward as trained, 866 with BatchNorm folded and 3 in the branch-parallel form. The forms:

* ``eager``: the module as trained (the reference).
* ``fused``: BatchNorm folded into the convolutions (a copy; the trained module and its state dict are left
  alone), channels_last memory format (oneDNN's native layout on the CPU, cuDNN's fast one on the GPU), run
  under ``torch.inference_mode``. Pure PyTorch modules, any device and dtype (autocast fp16 on CUDA works).
* ``parallel`` (HRNet): ``fused`` with the parallel branches of each stage on two threads of one intra-op thread
  each (`BranchParallelHRNet`), the stem split by rows: 3 OpenMP regions a forward. On CPU fp32 the two threads
  run a prepacked copy (`pack_hrnet`): oneDNN convolutions with their weights reordered once and the ReLU, or
  the residual / exchange add + ReLU, fused into them, as inductor's freezing does (an unpacked channels_last
  convolution reorders its weights on every call). The default on the CPU with >= 2 threads.
* ``jit``: ``fused`` traced, frozen and passed through ``torch.jit.optimize_for_inference`` (oneDNN fusions).
* ``compile``: ``fused`` compiled by ``torch.compile`` (inductor, with ``freezing``: constant folding, prepacked
  oneDNN convolutions with fused ReLU/add, generated C++ for the element-wise rest). Needs a C++ compiler and
  takes about a minute at start-up on two cores, and again for every new input shape, so it is opt-in and the
  caller runs a fixed shape (batch 1).

`optimise(model, form, example)` returns an `OptimisedModel`: a callable with the form that runs, the reason (the
sentence to log) and the largest |difference| to the eager module on a seeded check input. A form that cannot be
built (trace or compile error, numerical disagreement) falls back to the next simpler one with the reason.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from petr_ros.model.device import autocast

LOG = logging.getLogger(__name__)

FORMS = ("eager", "fused", "parallel", "jit", "compile")
# The default form (`default_form`): 'parallel' for HRNet on the CPU with >= 2 threads (fastest under both wait
# policies), else 'fused'; `jit` measured no faster than `fused`, and `compile` costs a start-up compile per shape
# (docs/model.md "CPU runtimes").
DEFAULT_FORM = "fused"
_FALLBACK = {"compile": "fused", "jit": "fused", "parallel": "fused", "fused": "eager"}
# Largest |form - eager| accepted, relative to the largest |eager output| on the check input: folding changes the
# order of fp32 operations (~1e-6 relative); a wrong graph differs by O(1).
AGREEMENT_TOLERANCE = 1e-3


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` (eval mode) in which every BatchNorm2d that directly follows a Conv2d is folded into it
    (the convolution gains a bias; the BatchNorm becomes nn.Identity). Returns (copy, number folded).

    "Follows" means: the next entry of the same nn.Sequential, or siblings named ``convK`` / ``bnK`` (the
    residual blocks' convention, e.g. HRNet's BasicBlock and Bottleneck). `model` is not modified."""
    folded_model = copy.deepcopy(model).eval()
    count = 0
    for module in list(folded_model.modules()):
        children = module._modules
        if isinstance(module, nn.Sequential):
            keys = list(children)
            for a, b in zip(keys, keys[1:], strict=False):
                conv, bn = children[a], children[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    children[a], children[b] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                    count += 1
        for name, bn in list(children.items()):
            if isinstance(bn, nn.BatchNorm2d) and name.startswith("bn"):
                conv_name = "conv" + name[2:]
                conv = children.get(conv_name)
                if isinstance(conv, nn.Conv2d):
                    children[conv_name], children[name] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                    count += 1
    return folded_model, count


def is_hrnet(model: nn.Module) -> bool:
    """Whether `model` has HRNet's stage structure (what the branch-parallel form runs)."""
    return all(hasattr(model, a) for a in ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                                           "final_layer"))


def default_form(model: nn.Module, device: torch.device | str = "cpu", threads: int | None = None) -> str:
    """The form PyTorch runs `model` in by default: 'parallel' for HRNet on the CPU with >= 2 intra-op threads,
    else 'fused' (BatchNorm folded, channels_last)."""
    threads = torch.get_num_threads() if threads is None else threads
    return "parallel" if is_hrnet(model) and torch.device(device).type == "cpu" and threads >= 2 else "fused"


def batchnorm_count(model: nn.Module) -> int:
    """How many BatchNorm layers `model` still holds."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _Worker:
    """One daemon thread that runs submitted calls with one intra-op thread, under inference mode (grad mode is
    per thread)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="petr-hrnet-branch")
        threads = torch.get_num_threads()
        # torch.set_num_threads sets the calling thread's OpenMP team size and a process-wide default for threads
        # that start later: give the worker one thread, then put the caller's default back.
        self._pool.submit(torch.set_num_threads, 1).result()
        torch.set_num_threads(threads)

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        def call() -> object:
            with torch.inference_mode():
                return fn(*args)

        return self._pool.submit(call)


def packing_available() -> bool:
    """Whether this PyTorch has oneDNN's prepacked pointwise-fused convolutions (what inductor's freezing calls on
    the CPU): ``mkldnn::_convolution_pointwise`` (+ its ``binary`` overload) and
    ``mkldnn::_reorder_convolution_weight``."""
    try:
        ops = torch.ops.mkldnn
        return bool(torch.backends.mkldnn.is_available() and ops._convolution_pointwise.binary is not None
                    and ops._reorder_convolution_weight is not None)
    except (AttributeError, RuntimeError):
        return False


class PackedConv(nn.Module):
    """A Conv2d (zero padding, BatchNorm already folded) whose weights oneDNN reordered once into its blocked layout
    (an unpacked convolution on channels_last fp32 reorders them on every call, which dominates on HRNet's small
    low-resolution maps), with the ReLU after it fused (`relu`); `add(x, other)` computes relu(conv(x) + other)
    in the same kernel (the residual and exchange sums). CPU, fp32, 4-D inputs."""

    def __init__(self, conv: nn.Conv2d, relu: bool, input_size: Sequence[int] | None = None) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"cannot prepack a convolution with padding {conv.padding!r} ({conv.padding_mode})")
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        weight = conv.weight.detach().float().contiguous()
        # oneDNN's blocked weights (a torch._mkldnn tensor): a plain attribute, neither parameter nor buffer
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            weight, self.padding, self.stride, self.dilation, self.groups,
            None if input_size is None else list(input_size))
        self.bias = None if conv.bias is None else conv.bias.detach().float().contiguous()
        self.attr = "relu" if relu else "none"
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                       self.dilation, self.groups, self.attr, [], "")

    def add(self, x: torch.Tensor, other: torch.Tensor, relu: bool = True) -> torch.Tensor:
        """relu(conv(x) + other) (without the ReLU when not `relu`); this conv's own `relu` is not applied."""
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "add", None,
            "relu" if relu else None, [], "")

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, stride={tuple(self.stride)}, "
                f"padding={tuple(self.padding)}, fused={self.attr}")


class PackedBasicBlock(nn.Module):
    """HRNet's BasicBlock with prepacked convolutions: conv1 + ReLU, then relu(conv2(.) + x) in one kernel."""

    def __init__(self, conv1: PackedConv, conv2: PackedConv) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2.add(self.conv1(x), x)


class PackedBottleneck(nn.Module):
    """The stem's Bottleneck with prepacked convolutions: conv1 + ReLU, conv2 + ReLU, relu(conv3(.) + residual)."""

    def __init__(self, conv1: PackedConv, conv2: PackedConv, conv3: PackedConv, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.downsample = conv1, conv2, conv3, downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.conv3.add(self.conv2(self.conv1(x)), residual)


def _conv_input_sizes(model: nn.Module, example: torch.Tensor) -> dict[int, tuple[int, ...]]:
    """id(conv) -> the input shape each Conv2d of `model` sees in one forward of `example` (oneDNN picks the
    blocked weight layout for it)."""
    sizes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:  # returns None: the input unchanged
        sizes.setdefault(id(module), tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def pack_hrnet(folded: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of the BatchNorm-folded HRNet `folded` whose convolutions are oneDNN-prepacked with their ReLU fused
    (`PackedConv`), BasicBlock and Bottleneck as `PackedBasicBlock` / `PackedBottleneck` (the residual add + ReLU
    fused into the last convolution), the nested Sequentials of the transitions and exchange paths flattened.
    Same module tree otherwise (stage modules, fuse_layers, final_layer), so its forward is HRNet's;
    `BranchParallelHRNet` also fuses each exchange sum + ReLU into a convolution. `example`: the input shape
    the weights are laid out for (others work). CPU fp32 only."""
    from petr_ros.model.hrnet import BasicBlock, Bottleneck, HighResolutionModule

    if batchnorm_count(folded):
        raise ValueError("pack_hrnet needs every BatchNorm folded first (fold_batchnorm)")
    sizes = _conv_input_sizes(folded, example)

    def conv(c: nn.Conv2d, relu: bool) -> PackedConv:
        return PackedConv(c, relu, sizes.get(id(c)))

    def flat(seq: nn.Sequential) -> list[nn.Module]:
        out: list[nn.Module] = []
        for m in seq:
            out.extend(flat(m) if isinstance(m, nn.Sequential) else [m])
        return [m for m in out if not isinstance(m, nn.Identity)]

    def pack(m: nn.Module | None) -> nn.Module | None:
        if m is None:
            return None
        if isinstance(m, nn.Conv2d):
            return conv(m, False)
        if isinstance(m, BasicBlock):
            return PackedBasicBlock(conv(m.conv1, True), conv(m.conv2, False))
        if isinstance(m, Bottleneck):
            return PackedBottleneck(conv(m.conv1, True), conv(m.conv2, True), conv(m.conv3, False),
                                    pack(m.downsample))
        if isinstance(m, nn.Sequential):
            items, out = flat(m), []
            k = 0
            while k < len(items):
                item = items[k]
                if isinstance(item, nn.Conv2d):
                    relu = k + 1 < len(items) and isinstance(items[k + 1], nn.ReLU)
                    out.append(conv(item, relu))
                    k += 2 if relu else 1
                else:
                    out.append(pack(item))
                    k += 1
            return out[0] if len(out) == 1 and isinstance(out[0], PackedConv) else nn.Sequential(*out)
        if isinstance(m, nn.ModuleList):
            return nn.ModuleList(pack(c) for c in m)
        if isinstance(m, HighResolutionModule):
            new = copy.copy(m)
            new._modules = dict(m._modules)
            new.branches = pack(m.branches)
            new.fuse_layers = pack(m.fuse_layers)
            return new
        if isinstance(m, (nn.ReLU, nn.Upsample, nn.Identity)):
            return m
        raise ValueError(f"pack_hrnet: unexpected module {type(m).__name__}")

    packed = copy.copy(folded)
    packed._modules = dict(folded._modules)
    packed.conv1, packed.conv2 = conv(folded.conv1, True), conv(folded.conv2, True)
    packed.relu = nn.Identity()  # the stem's ReLUs are fused into conv1 / conv2 (bn1 / bn2 are folded away)
    for name, child in folded.named_children():
        if name.startswith(("layer", "transition", "stage", "final_layer")):
            setattr(packed, name, pack(child))
    return packed.eval().requires_grad_(False)


def _chain(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


def _split(costs: Sequence[float]) -> tuple[list[int], list[int]]:
    """Indices split into two groups of about equal total cost (greedy, costliest first); the caller's group is
    the one with index 0."""
    groups: tuple[list[int], list[int]] = ([], [])
    totals = [0.0, 0.0]
    for i in sorted(range(len(costs)), key=lambda k: -costs[k]):
        g = 0 if totals[0] <= totals[1] else 1
        groups[g].append(i)
        totals[g] += costs[i]
    mine, theirs = groups if 0 in groups[0] else groups[::-1]
    return sorted(mine), sorted(theirs)


class BranchParallelHRNet(nn.Module):
    """HRNet-W32 (its BatchNorm folded or not) with its parallel branches run on two threads of one intra-op
    thread each, instead of every operation on an OpenMP team of two.

    HRNet's stages run 2-4 branches that do not depend on each other until the exchange (fuse) step, and by design
    every branch costs about the same (channels double where the resolution halves). So two threads can each take
    half the branches (four: 0 + 3 and 1 + 2; three: one thread runs branch 1 and the second half of branch 2, the
    other the first half of branch 2 and branch 0) and then half of the exchange outputs by cost; the stem is
    split by rows (`_stem`): 17 hand-overs per forward instead of about 860 OpenMP parallel regions, each of which
    wakes a sleeping thread under OMP_WAIT_POLICY=PASSIVE. The head runs as usual (the caller's thread count). The same
    operations on the same tensors: the output is the wrapped module's (up to the summation order of one thread
    against two). Used on the CPU when the caller has >= 2 intra-op threads and no autocast is active; otherwise
    (CUDA, one thread, autocast) it is the wrapped module's forward.

    With `example` (a CPU fp32 input of the shape it will run) the two threads run `packed`, a prepacked copy
    (`pack_hrnet`: every convolution a `PackedConv`, ReLU and residual add + ReLU fused, each exchange output's
    sum + ReLU fused into its last strided convolution, the head on the calling thread too) on fp32 inputs: the
    same operations up to fp32 summation order, about 0.84x of the folded module's time on one thread. Without
    the oneDNN ops, when packing fails or when the copy disagrees with `hrnet` on `example`, `packed` is None and
    `packed_reason` says why."""

    def __init__(self, hrnet: nn.Module, example: torch.Tensor | None = None) -> None:
        super().__init__()
        self.hrnet = hrnet
        self.split_stem = True  # the stem's rows in two halves, one per thread (False: on the caller's thread)
        self._worker: _Worker | None = None
        # with `example` (a CPU fp32 input; its shape lays out the weights): the prepacked copy (`pack_hrnet`)
        # that the two threads run on fp32 inputs; `hrnet` runs otherwise (CUDA, autocast, one thread)
        self.packed: nn.Module | None = None
        self.packed_reason = "not asked for"
        if example is not None:
            if not packing_available():
                self.packed_reason = "oneDNN prepacked convolutions unavailable in this PyTorch"
            elif example.device.type != "cpu" or example.dtype != torch.float32:
                self.packed_reason = f"prepacking is for CPU fp32 ({example.device.type}, {example.dtype})"
            else:
                try:
                    packed = pack_hrnet(hrnet, example)
                    with torch.inference_mode():  # its own forward against the folded module's on `example`
                        reference, got = hrnet(example), packed(example)
                    diff = float((got.float() - reference.float()).abs().max())
                    scale = max(float(reference.abs().max()), 1e-6)
                    if got.shape == reference.shape and diff <= AGREEMENT_TOLERANCE * scale:
                        self.packed = packed
                        self.packed_reason = "prepacked oneDNN convolutions with fused ReLU / add + ReLU"
                    else:
                        self.packed_reason = (f"the prepacked copy disagrees with the folded module by {diff:.3g} "
                                              f"(outputs up to {scale:.3g})")
                except Exception as err:  # an op missing or refusing these shapes: the folded module runs
                    self.packed_reason = f"prepacking failed: {type(err).__name__}: {str(err)[:200]}"

    def _parallel(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and torch.get_num_threads() >= 2 and not torch.is_autocast_enabled("cpu")
                and is_hrnet(self.hrnet))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._parallel(x):
            return self.hrnet(x)
        if self._worker is None:
            self._worker = _Worker()
        packed = self.packed is not None and x.dtype == torch.float32
        m = self.packed if packed else self.hrnet
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            return self.hrnet(x)  # the module's own checks raise the error
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            xs = [self._stem(x, m)]
            s = 2
            while hasattr(m, f"stage{s}"):
                inputs = self._transition(getattr(m, f"transition{s - 1}"), xs)
                for module in getattr(m, f"stage{s}"):
                    inputs = self._module(module, inputs, packed)
                xs = inputs
                s += 1
            if packed:  # the prepacked head on this one thread too (no OpenMP region), the result contiguous
                return m.final_layer(xs[0]).contiguous()
        finally:
            torch.set_num_threads(threads)
        return m.final_layer(xs[0])

    def _stem_rows(self, height: int) -> tuple[int, int, int] | None:
        """How the stem splits into a top and a bottom half of rows computed on one thread each: (rows of the
        output's top half m, halo L, first input row of the bottom half), or None when it cannot split."""
        m = self.hrnet  # the folded module's geometry (the prepacked copy's is the same)
        for conv in (m.conv1, m.conv2):
            if conv.kernel_size != (3, 3) or conv.stride != (2, 2) or conv.padding != (1, 1):
                return None
        halo = 0
        for conv in m.layer1.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size != (1, 1):
                if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1):
                    return None
                halo += 1
            elif isinstance(conv, nn.Conv2d) and conv.stride != (1, 1):
                return None
        half = height // 8  # layer1 has height / 4 rows; the top half m of them
        if half - halo - 1 < 0:
            return None
        return half, halo, 4 * (half - halo - 1)

    def _stem(self, x: torch.Tensor, m: nn.Module | None = None) -> torch.Tensor:
        """conv1, conv2, layer1 (1/4 resolution, 256 channels) on two threads: each computes half the output rows
        from its rows of the image plus a halo (the 3x3 convolutions' reach: 4 rows at 1/4 resolution, 4x that in
        the image), and drops the halo rows, which saw the slice's zero padding. Exact: every kept row is computed
        from the same input rows by the same operations; about 14 % more arithmetic than one pass. `m`: the
        module whose stem runs (default `hrnet`; the prepacked copy has the same tree)."""
        m = self.hrnet if m is None else m
        rows = self._stem_rows(x.shape[2]) if self.split_stem else None

        def stem(part: torch.Tensor) -> torch.Tensor:
            part = m.relu(m.bn1(m.conv1(part)))
            part = m.relu(m.bn2(m.conv2(part)))
            return m.layer1(part)

        if rows is None:
            return stem(x)
        half, halo, start = rows
        # bottom: image rows from `start` (even, so the stride-2 phase is kept); its first halo + 1 rows at 1/4
        # resolution saw the slice's top padding
        other = self._worker.submit(lambda: stem(x[:, :, start:])[:, :, halo + 1 :])
        top = self._main_part(other, lambda: stem(x[:, :, : 4 * (half + halo)])[:, :, :half])
        out = torch.cat([top, other.result()], dim=2)
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else out

    def _transition(self, transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The adapters between stages; when two or more convolve (after the stem: 256 -> 32 and 256 -> 64
        channels), the worker takes the second half of them."""
        jobs = [(i, t, xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
        convolving = [j for j in jobs if j[1] is not None]
        out = [src for _, _, src in jobs]
        if len(convolving) < 2:
            for i, t, src in convolving:
                out[i] = t(src)
            return out
        half = len(convolving) // 2
        other = self._worker.submit(lambda: [t(src) for _, t, src in convolving[half:]])
        mine = self._main_part(other, lambda: [t(src) for _, t, src in convolving[:half]])
        for (i, _, _), y in zip(convolving, [*mine, *other.result()], strict=True):
            out[i] = y
        return out

    def _module(self, module: nn.Module, xs: list[torch.Tensor], packed: bool = False) -> list[torch.Tensor]:
        xs = self._branches(module.branches, xs)
        outputs = len(module.fuse_layers)

        def fuse_packed(i: int) -> torch.Tensor:
            # prepacked: output i > 0 is relu(last conv of branch i-1's strided path + the other terms), one kernel
            layers = module.fuse_layers[i]
            if i == 0:
                y = xs[0] + layers[1](xs[1])
                for j in range(2, module.num_branches):
                    y.add_(layers[j](xs[j]))
                return y.relu_()
            terms = [xs[j] if i == j else layers[j](xs[j]) for j in range(module.num_branches) if j != i - 1]
            rest = terms[0] if len(terms) == 1 else terms[0] + terms[1]  # a new tensor, or xs[i] left alone
            for t in terms[2:]:
                rest.add_(t)
            path = layers[i - 1]
            steps = list(path) if isinstance(path, nn.Sequential) else [path]
            h = _chain(steps[:-1], xs[i - 1])
            return steps[-1].add(h, rest)

        def fuse(i: int) -> torch.Tensor:
            if packed:
                return fuse_packed(i)
            layers = module.fuse_layers[i]
            y = xs[0] if i == 0 else layers[0](xs[0])
            for j in range(1, module.num_branches):
                y = y + (xs[j] if i == j else layers[j](xs[j]))
            return module.relu(y)

        if outputs == 1:
            return [fuse(0)]
        # output i gathers i strided-conv chains from the finer branches: coarser outputs cost more
        mine, theirs = _split([i + 1.0 for i in range(outputs)])
        other = self._worker.submit(lambda: [fuse(i) for i in theirs])
        out: list[torch.Tensor] = [None] * outputs  # type: ignore[list-item]
        done = self._main_part(other, lambda: [fuse(i) for i in mine])
        for k, y in zip([*mine, *theirs], [*done, *other.result()], strict=True):
            out[k] = y
        return out

    def _main_part(self, other: Future, fn: Callable[[], object]) -> object:
        """fn() on this thread while `other` runs on the worker; waits for `other` whatever happens."""
        try:
            return fn()
        except BaseException:
            other.exception()  # let the worker finish before the error propagates
            raise

    def _branches(self, branches: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(xs)
        if n == 1:
            return [branches[0](xs[0])]
        if n == 3:  # 3 equal branches on 2 threads: split branch 2's chain of blocks between them
            chain = list(branches[2])
            half = len(chain) // 2
            middle: Future = Future()

            def second() -> tuple[torch.Tensor, torch.Tensor]:
                y1 = branches[1](xs[1])
                return y1, _chain(chain[half:], middle.result())

            other = self._worker.submit(second)

            def first() -> torch.Tensor:
                try:
                    middle.set_result(_chain(chain[:half], xs[2]))
                except BaseException as err:
                    middle.set_exception(err)
                    raise
                return branches[0](xs[0])

            y0 = self._main_part(other, first)
            y1, y2 = other.result()
            return [y0, y1, y2]
        # equal FLOPs by design, but the coarser branches' small maps run a little slower (1-thread best, stage 4:
        # 4.7, 4.9, 5.1, 6.7 ms): 0 + 3 against 1 + 2
        mine, theirs = _split([1.0 + 0.1 * k for k in range(n)])
        other = self._worker.submit(lambda: [branches[i](xs[i]) for i in theirs])
        out: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        done = self._main_part(other, lambda: [branches[i](xs[i]) for i in mine])
        for k, y in zip([*mine, *theirs], [*done, *other.result()], strict=True):
            out[k] = y
        return out


@dataclass
class OptimisedModel:
    """`run(x)` -> the network's output, computed by `form`; `reason` says why that form (the sentence to log)."""

    form: str  # 'eager' | 'fused' | 'jit' | 'compile'
    reason: str
    run: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module  # what runs (the eager module itself, the folded copy, the frozen script module, ...)
    max_abs_difference: float = 0.0  # |form - eager| on the build-time check input
    build_seconds: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _runner(module: Callable[[torch.Tensor], torch.Tensor], channels_last: bool, device: torch.device,
            precision: torch.dtype | None, no_grad: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> module(x) under inference mode (no_grad for inductor's frozen graphs), autocast when `precision`,
    channels_last in and a contiguous result out when `channels_last`."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad() if no_grad else torch.inference_mode(), autocast(device, precision):
            if channels_last:
                return module(x.contiguous(memory_format=torch.channels_last)).contiguous()
            return module(x)

    return run


@dataclass
class _Built:
    module: nn.Module  # what the form holds (for inspection)
    target: Callable[[torch.Tensor], torch.Tensor]  # what the runner calls
    channels_last: bool
    no_grad: bool = False  # inductor's frozen graphs run under no_grad rather than inference mode

    def runner(self, device: torch.device, precision: torch.dtype | None) -> Callable[[torch.Tensor], torch.Tensor]:
        return _runner(self.target, self.channels_last, device, precision, self.no_grad)


def _build(model: nn.Module, form: str, example: torch.Tensor, precision: torch.dtype | None) -> _Built:
    if form == "eager":
        return _Built(model, model, False)
    channels_last = example.ndim == 4  # the memory format exists for 4-D (N, C, H, W) tensors only
    fused, _ = fold_batchnorm(model)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    x = example.contiguous(memory_format=torch.channels_last) if channels_last else example
    if form == "fused":
        return _Built(fused, fused, channels_last)
    if form == "parallel":
        if not is_hrnet(fused):
            raise RuntimeError(f"the branch-parallel form is for HRNet, not {type(model).__name__}")
        parallel = BranchParallelHRNet(fused.requires_grad_(False), example=x if channels_last else None)
        return _Built(parallel, parallel, channels_last)
    if form == "jit":
        if precision is not None:
            raise RuntimeError(f"the TorchScript form runs full precision only (precision is {precision})")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the input checks, constant for one shape
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of compile
            traced = torch.jit.trace(fused, x, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            frozen(x)  # the first two calls profile and specialise the graph
            frozen(x)
        return _Built(frozen, frozen, channels_last)
    if form == "compile":
        # freezing: the weights become constants (prepacked oneDNN convolutions); for this compile only
        compiled = torch.compile(fused, dynamic=False, options={"freezing": True})
        return _Built(fused, compiled, channels_last, no_grad=True)
    raise ValueError(f"unknown inference form {form!r}; use one of {FORMS}")


def optimise(
    model: nn.Module, form: str, example: torch.Tensor, precision: torch.dtype | None = None
) -> OptimisedModel:
    """`model` (eval mode, one tensor in, one tensor out) in inference form `form` (see the module docstring),
    checked against the eager module on seeded noise of `example`'s shape, dtype and device, both in full
    precision (what folding changes does not depend on it), and then run under autocast to `precision` when it
    is given (fp16 / bf16 on CUDA; None: full precision). A form that fails to build or disagrees falls back to
    the next simpler one (compile/jit/parallel -> fused -> eager), with the reason.
    An unknown form is a ValueError. The form runs a snapshot of the weights taken now."""
    if form not in FORMS:
        raise ValueError(f"unknown inference form {form!r}; use one of {FORMS}")
    model = model.eval()
    check = torch.randn(example.shape, generator=torch.Generator().manual_seed(0), dtype=example.dtype)
    check = check.to(example.device)
    with torch.inference_mode():
        reference = model(check).float()
    scale = max(float(reference.abs().max()), 1e-6)
    failures: list[str] = []
    current: str | None = form
    while current is not None:
        t0 = time.perf_counter()
        try:
            built = _build(model, current, check, precision)
            run = built.runner(check.device, None)
            diff = 0.0 if current == "eager" else float((run(check).float() - reference).abs().max())
            if precision is not None:
                run = built.runner(check.device, precision)
                run(check)  # compile forms compile again for autocast: now, not on the first frame
        except Exception as err:  # tracing / compiling raise many kinds: fall back and say why
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            failures.append(f"{current} failed: {type(err).__name__}: {first[:200]}")
            current = _FALLBACK.get(current)
            continue
        seconds = time.perf_counter() - t0
        if not diff <= AGREEMENT_TOLERANCE * scale:
            failures.append(f"{current} disagrees with eager by {diff:.3g} (outputs up to {scale:.3g})")
            current = _FALLBACK.get(current)
            continue
        what = {"eager": "eager (the module as trained)",
                "fused": "BatchNorm folded into the convolutions, channels_last",
                "parallel": "BatchNorm folded, channels_last, branches on 2 threads of 1 intra-op thread each",
                "jit": "BatchNorm folded, channels_last, TorchScript frozen + optimize_for_inference",
                "compile": "BatchNorm folded, channels_last, torch.compile (inductor, freezing)"}[current]
        if isinstance(built.module, BranchParallelHRNet):
            packed = built.module.packed is not None
            what += f", {built.module.packed_reason}" if packed else f" (not prepacked: {built.module.packed_reason})"
        reason = f"{what}; built in {seconds:.1f} s; max |difference| to eager {diff:.2e}"
        if failures:
            reason += f" (fallback: {'; '.join(failures)})"
            LOG.warning("inference form: %s", reason)
        return OptimisedModel(form=current, reason=reason, run=run, module=built.module, max_abs_difference=diff,
                              build_seconds=seconds)
    raise AssertionError("unreachable: eager always builds")  # pragma: no cover

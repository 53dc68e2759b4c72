"""The one device and precision rule (petr_ros.model.device), used by the estimator, the front ends, the node's
parameter check, training and the benchmarks."""

from __future__ import annotations

import pytest
import torch

from petr_ros.model.device import PRECISIONS, autocast, device_spec_error, resolve_device, resolve_precision


@pytest.mark.parametrize("spec", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "CPU", " cuda:1 "])
def test_spellings_accepted(spec: str) -> None:
    assert device_spec_error(spec) is None


@pytest.mark.parametrize("spec", ["gpu", "gpu0", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "mps"])
def test_spellings_refused_with_the_parameter_wording(spec: str) -> None:
    assert device_spec_error(spec) == f"device must be auto, cpu, cuda or cuda:N, got '{spec}'"
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(spec)


def test_resolve_on_this_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda", 0)
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_precision_rule() -> None:
    cpu = torch.device("cpu")
    assert PRECISIONS == ("auto", "fp32", "fp16", "bf16")
    assert resolve_precision("auto", cpu) is None and resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16  # the node takes bf16 too (same list)
    assert resolve_precision("auto", torch.device("cuda", 0)) is torch.float16
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int8", cpu)
    x = torch.ones(4, 4)
    with autocast(cpu, None):
        assert (x @ x).dtype == torch.float32
    with autocast(cpu, torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16

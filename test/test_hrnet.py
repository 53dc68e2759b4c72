"""HRNetW32: the official state-dict layout loads strictly, forward shapes, determinism, weight-file errors."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from petr_ros.model.hrnet import HRNetW32, HRNetWeightsError, load_hrnet_weights
from petr_ros.model.size import count_parameters

torch.set_num_threads(1)  # 2 shared cores: one thread avoids OpenMP stalls when the machine is busy
LAYOUT = Path(__file__).parent / "data" / "hrnet_w32_256x192_state_dict.tsv"


def _layout() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    rows = []
    for line in LAYOUT.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((name, dims, getattr(torch, dtype)))
    return rows


def _random_official_state_dict(with_batch_counts: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict built only from the reference layout, random values of the listed shapes and dtypes
    (a fresh dict each call; the tensors are shared and never modified in place)."""
    return dict(_cached_state_dict(with_batch_counts, seed))


@functools.cache
def _cached_state_dict(with_batch_counts: bool, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape, dtype in _layout():
        if dtype == torch.int64:
            sd[name] = torch.randint(0, 1000, shape, generator=g, dtype=dtype)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=g) + 0.5  # variances must stay positive
        else:
            sd[name] = torch.randn(shape, generator=g, dtype=dtype) * 0.05
    if not with_batch_counts:  # drawn and then dropped, so the float values do not depend on the flag
        sd = {k: v for k, v in sd.items() if v.dtype != torch.int64}
    return sd


@pytest.fixture(scope="module")
def model() -> HRNetW32:
    m = HRNetW32()
    m.load_state_dict(_random_official_state_dict(), strict=True)
    return m.eval()


def test_layout_matches_reference_exactly() -> None:
    rows = _layout()
    sd = HRNetW32().state_dict()
    assert len(rows) == 1754
    assert list(sd) == [name for name, _, _ in rows]  # same names, same registration order
    for name, shape, dtype in rows:
        assert tuple(sd[name].shape) == shape, name
        assert sd[name].dtype == dtype, name
    assert count_parameters(HRNetW32()) == 28536113


def test_strict_load_copies_values(model: HRNetW32) -> None:
    ref = _random_official_state_dict()
    got = model.state_dict()
    for name in ("conv1.weight", "stage4.2.fuse_layers.0.3.0.weight", "final_layer.bias", "bn1.running_var"):
        torch.testing.assert_close(got[name], ref[name])


def test_load_without_num_batches_tracked_and_with_module_prefix() -> None:
    sd = _random_official_state_dict(with_batch_counts=False)
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    m = HRNetW32()
    m.load_state_dict(sd, strict=True)
    m.load_state_dict({f"module.{k}": v for k, v in sd.items()}, strict=True)
    torch.testing.assert_close(m.state_dict()["layer1.0.conv3.weight"], sd["layer1.0.conv3.weight"])


def test_forward_shapes_and_determinism(model: HRNetW32) -> None:
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        heat = model(x)
        heat2 = model(x)
        feats = model.forward_features(x[1:2])
        single = model.final_layer(feats)
    assert heat.shape == (2, 17, 64, 48)
    assert feats.shape == (1, 32, 64, 48)
    assert torch.isfinite(heat).all()
    assert torch.equal(heat, heat2)  # eval mode: no dropout, BN uses running statistics
    # forward == head(stage-4 high-resolution branch), and batching does not mix samples
    torch.testing.assert_close(single[0], heat[1], atol=1e-4, rtol=1e-4)
    # the two samples differ, so the network is not collapsing its input
    assert not torch.allclose(heat[0], heat[1])


def test_other_input_sizes_keep_the_stride(model: HRNetW32) -> None:
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 32, 24)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 256, 192))
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.zeros(1, 3, 64, 48))


def test_load_hrnet_weights_round_trip(tmp_path: Path, model: HRNetW32) -> None:
    path = tmp_path / "pose_hrnet_w32_256x192.pth"
    torch.save(_random_official_state_dict(with_batch_counts=False), path)
    loaded = load_hrnet_weights(path)
    assert not loaded.training
    x = torch.randn(1, 3, 128, 96, generator=torch.Generator().manual_seed(2))  # the values matter, not the size
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


def test_load_hrnet_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_hrnet_weights(tmp_path / "nowhere.pth")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(HRNetWeightsError, match="cannot read"):
        load_hrnet_weights(garbage)

    truncated = tmp_path / "truncated.pth"  # an interrupted download: a valid file cut short
    sd = _random_official_state_dict()
    torch.save({k: sd[k] for k in list(sd)[:40]}, tmp_path / "part.pth")
    truncated.write_bytes((tmp_path / "part.pth").read_bytes()[:4096])
    with pytest.raises(HRNetWeightsError, match="cannot read"):
        load_hrnet_weights(truncated)

    other = tmp_path / "resnet_like.pth"
    del sd["final_layer.weight"]
    sd["fc.weight"] = torch.zeros(10, 2)
    sd["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    torch.save(sd, other)
    with pytest.raises(HRNetWeightsError) as err:
        load_hrnet_weights(other)
    msg = str(err.value)
    assert "final_layer.weight" in msg and "fc.weight" in msg and "conv1.weight" in msg

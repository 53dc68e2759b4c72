"""Heatmap decoders on synthetic Gaussians with known sub-pixel peaks, and the crop <-> image mapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from petr_ros.model.heatmap import argmax_decode, decode_heatmaps, heatmap_to_input, soft_argmax_decode
from petr_ros.preprocessing import (
    CROP_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_people,
    expand_boxes,
    full_frame_box,
    person_boxes_from_keypoints,
    transform_points,
    uncrop_points,
)

torch.set_num_threads(2)


def _gaussians(centres: np.ndarray, sigma: float = 2.0, size: tuple[int, int] = (48, 64), amp: float = 0.9):
    """(B, K, 2) sub-pixel centres (x, y) -> (B, K, H, W) Gaussian heatmaps of peak height `amp`."""
    w, h = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    c = torch.as_tensor(centres, dtype=torch.float32)
    d2 = (xs - c[..., 0, None, None]) ** 2 + (ys - c[..., 1, None, None]) ** 2
    return amp * torch.exp(-d2 / (2 * sigma**2))


@pytest.fixture(scope="module")
def centres() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform([3, 3], [44, 60], size=(4, 17, 2))  # includes peaks 3 px from the border


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_soft_argmax_is_sub_pixel_accurate(centres: np.ndarray, sigma: float) -> None:
    hm = _gaussians(centres, sigma)
    coords, scores = soft_argmax_decode(hm)
    assert coords.shape == (4, 17, 2) and scores.shape == (4, 17)
    err = (coords.numpy() - centres).__abs__().max()
    assert err < 0.1, f"soft-argmax error {err:.3f} px"
    # the peak value of a sampled Gaussian is at most its amplitude and close to it
    assert torch.all(scores <= 0.9 + 1e-6) and torch.all(scores > 0.7)


def test_soft_argmax_ignores_far_background_noise(centres: np.ndarray) -> None:
    hm = _gaussians(centres) + 0.05 * torch.rand(4, 17, 64, 48, generator=torch.Generator().manual_seed(0))
    windowed, _ = soft_argmax_decode(hm)
    assert np.abs(windowed.numpy() - centres).max() < 0.35
    # with the whole map as support, 3000 noisy pixels pull the estimate towards the map centre
    full, _ = soft_argmax_decode(hm, beta=10.0, window=None)
    assert np.abs(full.numpy() - centres).max() > np.abs(windowed.numpy() - centres).max()


def test_soft_argmax_is_differentiable(centres: np.ndarray) -> None:
    hm = _gaussians(centres[:1, :2]).requires_grad_(True)
    coords, _ = soft_argmax_decode(hm)
    coords[0, 0, 0].backward()
    g = hm.grad[0, 0]
    assert torch.isfinite(hm.grad).all() and g.abs().sum() > 0
    # raising the map right of the peak moves x to the right
    x0, y0 = np.round(centres[0, 0]).astype(int)
    assert g[y0, x0 + 1] > 0 > g[y0, x0 - 1]


def test_argmax_and_quarter_offset() -> None:
    centres = np.array([[[10.0, 20.0], [30.3, 40.0], [5.0, 7.8]]])
    hm = _gaussians(centres)
    coords, scores = argmax_decode(hm)
    np.testing.assert_array_equal(coords.numpy(), [[[10, 20], [30, 40], [5, 8]]])
    np.testing.assert_allclose(scores.numpy()[0, 0], 0.9, atol=1e-6)
    shifted, _ = argmax_decode(hm, quarter_offset=True)
    # no shift for an exactly centred peak (equal neighbours); +x for 30.3, -y for 7.8
    np.testing.assert_allclose(shifted.numpy(), [[[10, 20], [30.25, 40], [5, 7.75]]])
    torch.testing.assert_close(decode_heatmaps(hm, "argmax")[0], coords)
    with pytest.raises(ValueError, match="unknown heatmap decoding method"):
        decode_heatmaps(hm, "dark")
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        soft_argmax_decode(torch.zeros(17, 64, 48))


def test_fp16_heatmaps_decode_in_fp32(centres: np.ndarray) -> None:
    coords, _ = decode_heatmaps(_gaussians(centres).half())
    assert coords.dtype == torch.float32
    assert np.abs(coords.numpy() - centres).max() < 0.1


def test_heatmap_to_input_uses_the_stride() -> None:
    c = torch.tensor([[[10.0, 20.0]]])
    np.testing.assert_allclose(heatmap_to_input(c, (48, 64), (192, 256)).numpy(), [[[40.0, 80.0]]])


def test_boxes_expand_to_three_by_four() -> None:
    boxes = np.array([[100, 50, 140, 250], [0, 0, 300, 100]], dtype=np.float32)  # tall and wide
    out = expand_boxes(boxes, padding=1.0)
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    np.testing.assert_allclose(w / h, 0.75, rtol=1e-6)
    np.testing.assert_allclose((out[:, :2] + out[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)
    assert np.all(w >= boxes[:, 2] - boxes[:, 0]) and np.all(h >= boxes[:, 3] - boxes[:, 1])
    padded = expand_boxes(boxes)
    np.testing.assert_allclose(padded[:, 2] - padded[:, 0], 1.25 * w, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        expand_boxes(np.zeros((2, 3)))


def test_keypoint_boxes_have_a_margin() -> None:
    kp = np.array([[[100, 100], [200, 300]]], dtype=np.float32)
    box = person_boxes_from_keypoints(kp, margin=0.1)
    np.testing.assert_allclose(box, [[90, 80, 210, 320]])


def test_crop_uncrop_round_trip_and_pixels_land_where_the_affine_says() -> None:
    rng = np.random.default_rng(1)
    image = np.zeros((342, 548, 3), dtype=np.uint8)
    boxes = np.array([[100, 40, 180, 300], [300, 100, 520, 200], [-50, -20, 60, 90]], dtype=np.float32)
    crops, affines, crop_boxes = crop_people(image, boxes, normalise=False)
    assert crops.shape == (3, 256, 192, 3) and affines.shape == (3, 2, 3) and crop_boxes.shape == (3, 4)

    pts = rng.uniform(crop_boxes[:, None, :2], crop_boxes[:, None, 2:], size=(3, 17, 2))
    np.testing.assert_allclose(uncrop_points(transform_points(pts, affines), affines), pts, atol=1e-9)
    # the crop box's corners are the crop's corners
    corners = np.stack([crop_boxes[:, :2], crop_boxes[:, 2:]], axis=1)
    np.testing.assert_allclose(transform_points(corners, affines)[:, 1], np.broadcast_to(CROP_SIZE, (3, 2)), atol=1e-4)

    # a white dot drawn in the image shows up in the crop where the affine maps it
    dot = np.array([140.0, 170.0])
    img = image.copy()
    cv2.circle(img, (int(dot[0]), int(dot[1])), 3, (255, 255, 255), -1)
    crop, aff, _ = crop_people(img, boxes[:1], normalise=False)
    m = crop[0, :, :, 0].astype(np.float64)
    ys, xs = np.mgrid[: m.shape[0], : m.shape[1]]
    found = np.array([(m * xs).sum(), (m * ys).sum()]) / m.sum()
    expected = transform_points(dot[None, None], aff)[0, 0]
    assert np.abs(found - expected).max() < 0.5


def test_crops_are_imagenet_normalised_rgb_and_full_frame_box() -> None:
    image = np.zeros((120, 90, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red
    crops, affines, crop_boxes = crop_people(image, full_frame_box(90, 120), padding=1.0)
    assert crops.shape == (1, 3, 256, 192) and crops.dtype == np.float32
    centre = crops[0, :, 128, 96]
    np.testing.assert_allclose(centre, (np.array([1.0, 0.0, 0.0]) - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5)
    np.testing.assert_allclose(crop_boxes, [[0, 0, 90, 120]])  # already 3:4
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        crop_people(np.zeros((10, 10)), full_frame_box(10, 10))
    with pytest.raises(ValueError, match="uint8"):
        crop_people(np.zeros((10, 10, 3), np.float32), full_frame_box(10, 10))


def test_soft_argmax_lets_gradients_reach_the_backbone() -> None:
    """The reason for the soft-argmax default: a keypoint loss can fine-tune HRNet end to end."""
    from petr_ros.model.hrnet import HRNetW32

    torch.manual_seed(0)
    net = HRNetW32()
    coords, _ = soft_argmax_decode(net(torch.randn(1, 3, 64, 64)), window=None)
    coords.sum().backward()
    grad = net.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    net.zero_grad()
    hard, _ = argmax_decode(net(torch.randn(1, 3, 64, 64)))
    assert not hard.requires_grad  # the thesis decoder blocks them

"""image_codec: every encoding round-trips on a real photo; padding, endianness and bad buffers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from petr_ros.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    decode_compressed,
    decode_raw,
    encode_compressed,
    encode_raw,
)

ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    bgr = cv2.imread(str(ASSETS / "messi5.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing asset {ASSETS / 'messi5.jpg'} (run scripts/setup_env.sh)"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode(fields: dict) -> np.ndarray:
    return decode_raw(**fields)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "8UC4"])
def test_colour_encodings_are_exact(photo: np.ndarray, encoding: str) -> None:
    out = _decode(encode_raw(photo, encoding))
    assert out.dtype == np.uint8 and out.shape == photo.shape
    np.testing.assert_array_equal(out, photo)


def test_bgr8_bytes_are_reordered(photo: np.ndarray) -> None:
    # Independent of encode_raw: the BGR buffer OpenCV itself holds.
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    h, w, _ = bgr.shape
    out = decode_raw("bgr8", w, h, w * 3, False, bgr.tobytes())
    np.testing.assert_array_equal(out, photo)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_grey_replicated(photo: np.ndarray, encoding: str) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    out = decode_raw(encoding, w, h, w, False, grey.tobytes())
    assert out.shape == (h, w, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_honours_endianness(photo: np.ndarray, bigendian: bool) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    values = grey.astype(np.uint16) * 256 + 77  # low byte is noise that >> 8 must drop
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = decode_raw("mono16", w, h, w * 2, bigendian, data)
    np.testing.assert_array_equal(out[..., 0], grey)
    # Reading the same bytes with the wrong endianness gives a different image: the flag is really used.
    wrong = decode_raw("mono16", w, h, w * 2, not bigendian, data)
    assert not np.array_equal(wrong[..., 0], grey)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16bit_colour(photo: np.ndarray, encoding: str, bigendian: bool) -> None:
    np.testing.assert_array_equal(_decode(encode_raw(photo, encoding, big_endian=bigendian)), photo)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_close_to_original(photo: np.ndarray, encoding: str) -> None:
    img = photo[:, : photo.shape[1] // 2 * 2]
    fields = encode_raw(img, encoding)
    assert fields["step"] == img.shape[1] * 2
    out = _decode(fields)
    assert out.shape == img.shape
    # 4:2:2 chroma subsampling loses colour detail: compare with a tolerance, and check the order matters.
    err = np.abs(out.astype(np.int16) - img).mean()
    assert err < 2.0, f"mean abs error {err:.2f}"
    swapped = {"yuv422": "yuyv", "uyvy": "yuyv", "yuv422_yuy2": "uyvy", "yuyv": "uyvy"}[encoding]
    wrong = decode_raw(swapped, **{k: v for k, v in fields.items() if k != "encoding"})
    assert np.abs(wrong.astype(np.int16) - img).mean() > 2 * err


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16", "yuyv"])
def test_step_padding_is_skipped(photo: np.ndarray, encoding: str) -> None:
    img = photo[:, : photo.shape[1] // 2 * 2]
    plain = _decode(encode_raw(img, encoding))
    fields = encode_raw(img, encoding, padding=13)
    assert fields["step"] > fields["width"] * (2 if encoding in ("mono16", "yuyv") else 4 if encoding == "bgra8" else 3)
    padded_data = bytearray(fields["data"])
    # Fill the padding with garbage: it must never show up in the image.
    row_bytes = fields["step"] - 13
    for r in range(fields["height"]):
        padded_data[r * fields["step"] + row_bytes : (r + 1) * fields["step"]] = b"\xff" * 13
    fields["data"] = bytes(padded_data)
    np.testing.assert_array_equal(_decode(fields), plain)


def test_extra_trailing_data_is_ignored(photo: np.ndarray) -> None:
    fields = encode_raw(photo, "rgb8")
    fields["data"] += b"\x00" * 100
    np.testing.assert_array_equal(_decode(fields), photo)


def test_accepts_numpy_and_array_buffers(photo: np.ndarray) -> None:
    fields = encode_raw(photo, "rgb8")
    import array

    for data in (np.frombuffer(fields["data"], np.uint8), array.array("B", fields["data"]), bytearray(fields["data"])):
        np.testing.assert_array_equal(decode_raw(**{**fields, "data": data}), photo)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_encodings_rejected_with_reason(encoding: str) -> None:
    with pytest.raises(ImageDecodeError, match="depth image"):
        decode_raw(encoding, 4, 4, 16, False, bytes(64))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"encoding": "rgb9"}, "unsupported image encoding 'rgb9'"),
        ({"width": 0}, "zero size"),
        ({"height": -1}, "zero size"),
        ({"width": 100000, "height": 100000}, "exceeds the limit"),
        ({"step": 5}, "step 5 is shorter"),
        ({"data": bytes(10)}, "data has 10 bytes"),
        ({"encoding": "yuyv", "width": 3, "step": 6}, "even width"),
    ],
)
def test_bad_buffers_raise_clear_errors(fields: dict, reason: str) -> None:
    base = {"encoding": "rgb8", "width": 4, "height": 3, "step": 12, "is_bigendian": False, "data": bytes(36)}
    with pytest.raises(ImageDecodeError, match=reason):
        decode_raw(**{**base, **fields})
    assert issubclass(ImageDecodeError, ValueError)


def test_every_supported_encoding_decodes(photo: np.ndarray) -> None:
    img = photo[:64, :96]
    for encoding in SUPPORTED_ENCODINGS:
        out = _decode(encode_raw(img, encoding))
        assert out.shape == img.shape and out.dtype == np.uint8, encoding


def test_compressed_png_exact_and_jpeg_close(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_compressed("png", encode_compressed(photo, "png")), photo)
    jpeg = decode_compressed("jpeg", encode_compressed(photo, "jpeg", quality=95))
    assert jpeg.shape == photo.shape
    assert np.abs(jpeg.astype(np.int16) - photo).mean() < 4.0
    # The ROS format string is informational: a "rgb8; jpeg compressed bgr8" label decodes the same.
    np.testing.assert_array_equal(decode_compressed("rgb8; jpeg compressed bgr8", encode_compressed(photo)),
                                  decode_compressed("jpeg", encode_compressed(photo)))


def test_compressed_grey_png(photo: np.ndarray) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    ok, png = cv2.imencode(".png", grey)
    assert ok
    out = decode_compressed("png", png.tobytes())
    np.testing.assert_array_equal(out[..., 1], grey)


@pytest.mark.parametrize(
    ("fmt", "data", "reason"),
    [
        ("jpeg", b"", "no data"),
        ("jpeg", b"\xff\xd8\xff\xe0 this is not a jpeg", "could not be decoded"),
        ("png", bytes(range(256)) * 4, "could not be decoded"),
        ("16UC1; compressedDepth png", b"\x00" * 32, "compressed depth"),
    ],
)
def test_bad_compressed_raise_clear_errors(fmt: str, data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_compressed(fmt, data)


def test_truncated_jpeg_never_crashes(photo: np.ndarray) -> None:
    jpeg = encode_compressed(photo)
    for cut in (2, 20, 200, len(jpeg) // 2):
        try:
            out = decode_compressed("jpeg", jpeg[:cut])
        except ImageDecodeError:
            continue
        # libjpeg may return a partially grey image for a truncated stream: still a valid RGB image.
        assert out.shape == photo.shape and out.dtype == np.uint8

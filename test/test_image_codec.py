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


# --- Bayer and NV12/NV21 ----------------------------------------------------------------------------------------
# Where each colour sits in the top-left 2x2 block of each ROS Bayer pattern (row, column): written out by hand here,
# independent of the codec, from the encoding names of sensor_msgs/image_encodings.
BAYER_LAYOUT = {
    "rggb": {"r": [(0, 0)], "g": [(0, 1), (1, 0)], "b": [(1, 1)]},
    "bggr": {"b": [(0, 0)], "g": [(0, 1), (1, 0)], "r": [(1, 1)]},
    "gbrg": {"g": [(0, 0), (1, 1)], "b": [(0, 1)], "r": [(1, 0)]},
    "grbg": {"g": [(0, 0), (1, 1)], "r": [(0, 1)], "b": [(1, 0)]},
}
QUADRANT_COLOURS = [(200, 40, 10), (10, 180, 60), (30, 60, 220), (250, 250, 20)]


def _quadrants(size: int = 32) -> np.ndarray:
    img = np.zeros((2 * size, 2 * size, 3), np.uint8)
    for k, colour in enumerate(QUADRANT_COLOURS):
        r, c = divmod(k, 2)
        img[r * size:(r + 1) * size, c * size:(c + 1) * size] = colour
    return img


def _mosaic(img: np.ndarray, pattern: str) -> np.ndarray:
    mosaic = np.zeros(img.shape[:2], img.dtype)
    for colour, places in BAYER_LAYOUT[pattern].items():
        for dy, dx in places:
            mosaic[dy::2, dx::2] = img[dy::2, dx::2, "rgb".index(colour)]
    return mosaic


def _quadrant_interiors_match(out: np.ndarray, size: int = 32, margin: int = 3) -> bool:
    for k, colour in enumerate(QUADRANT_COLOURS):
        r, c = divmod(k, 2)
        block = out[r * size + margin:(r + 1) * size - margin, c * size + margin:(c + 1) * size - margin]
        if not np.array_equal(block, np.broadcast_to(np.array(colour, np.uint8), block.shape)):
            return False
    return True


@pytest.mark.parametrize("pattern", list(BAYER_LAYOUT))
def test_bayer8_known_pattern_demosaics_to_its_colours(pattern: str) -> None:
    img = _quadrants()
    mosaic = _mosaic(img, pattern)
    h, w = mosaic.shape
    out = decode_raw(f"bayer_{pattern}8", w, h, w, False, mosaic.tobytes())
    assert out.shape == img.shape and out.dtype == np.uint8
    assert _quadrant_interiors_match(out)  # flat colour areas come back exactly
    # Read as any other pattern, the same bytes give wrong colours: the pattern name is really used.
    for other in set(BAYER_LAYOUT) - {pattern}:
        assert not _quadrant_interiors_match(decode_raw(f"bayer_{other}8", w, h, w, False, mosaic.tobytes())), other


@pytest.mark.parametrize("pattern", list(BAYER_LAYOUT))
@pytest.mark.parametrize("bigendian", [False, True])
def test_bayer16_known_pattern_honours_endianness(pattern: str, bigendian: bool) -> None:
    img16 = _quadrants().astype(np.uint16) * 256 + 99  # the low byte must not matter after demosaicing and >> 8
    mosaic = _mosaic(img16, pattern)
    h, w = mosaic.shape
    data = mosaic.astype(">u2" if bigendian else "<u2").tobytes()
    assert _quadrant_interiors_match(decode_raw(f"bayer_{pattern}16", w, h, 2 * w, bigendian, data))
    assert not _quadrant_interiors_match(decode_raw(f"bayer_{pattern}16", w, h, 2 * w, not bigendian, data))


# BT.601 limited-range Y, Cb, Cr of pure colours (the published reference values).
YUV_REFERENCE = {(255, 0, 0): (81, 90, 240), (0, 255, 0): (145, 54, 34), (0, 0, 255): (41, 240, 110)}


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_nv12_nv21_known_colours(encoding: str) -> None:
    w, h = 8, 6
    for rgb, (y, cb, cr) in YUV_REFERENCE.items():
        first, second = (cb, cr) if encoding == "nv12" else (cr, cb)
        chroma = np.tile(np.array([first, second], np.uint8), (h // 2, w // 2))
        planes = np.concatenate([np.full((h, w), y, np.uint8), chroma])
        out = decode_raw(encoding, w, h, w, False, planes.tobytes())
        assert out.shape == (h, w, 3)
        assert np.abs(out.astype(int) - rgb).max() <= 3, (encoding, rgb, out[0, 0])
        swapped = decode_raw("nv21" if encoding == "nv12" else "nv12", w, h, w, False, planes.tobytes())
        assert np.abs(swapped.astype(int) - rgb).max() > 20  # U/V order matters (green the least: 32)


@pytest.mark.parametrize("encoding", ["nv12", "nv21", "bayer_rggb8", "bayer_grbg16"])
def test_photo_round_trip_close(photo: np.ndarray, encoding: str) -> None:
    img = photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]
    fields = encode_raw(img, encoding, padding=6)
    out = _decode(fields)
    assert out.shape == img.shape
    err = np.abs(out.astype(np.int16) - img).mean()
    assert err < 6.0, f"mean abs error {err:.2f}"  # chroma subsampling / demosaicing lose fine colour detail


def test_nv12_padding_applies_to_both_planes(photo: np.ndarray) -> None:
    img = photo[:64, :96]
    plain = _decode(encode_raw(img, "nv12"))
    fields = encode_raw(img, "nv12", padding=10)
    assert fields["step"] == 106 and len(fields["data"]) == 106 * 96
    np.testing.assert_array_equal(_decode(fields), plain)


@pytest.mark.parametrize(
    ("encoding", "width", "height", "reason"),
    [("nv12", 5, 4, "even width and height"), ("nv21", 4, 3, "even width and height"),
     ("bayer_rggb8", 1, 8, "2x2 colour block")],
)
def test_bad_planar_and_bayer_sizes(encoding: str, width: int, height: int, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_raw(encoding, width, height, width, False, bytes(width * height * 2))


def test_nv12_short_data_names_the_planes() -> None:
    with pytest.raises(ImageDecodeError, match=r"1.5 = 24"):
        decode_raw("nv12", 4, 4, 4, False, bytes(16))  # the Y plane alone


# --- decompression bombs ----------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of width x height black pixels: a few hundred KB that decode to width*height bytes."""
    import struct
    import zlib

    packer = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte 0 + black pixels
    rows_per_part = max(1, (8 << 20) // len(row))
    parts = [packer.compress(row * min(rows_per_part, height - i)) for i in range(0, height, rows_per_part)]
    idat = b"".join(parts) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb(photo: np.ndarray, width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to declare width x height (libjpeg would allocate it all
    and fill what the data does not cover)."""
    data = bytearray(encode_compressed(photo[:16, :16]))
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC2):
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    data[pos + 5:pos + 7] = height.to_bytes(2, "big")
    data[pos + 7:pos + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_header_sizes_of_every_container(photo: np.ndarray) -> None:
    from petr_ros.image_codec import compressed_image_size

    img = photo[:37, :53]
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    cases = {".png": "png", ".jpg": "jpeg", ".bmp": "bmp", ".tiff": "tiff", ".webp": "webp"}
    for ext, kind in cases.items():
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # 101: lossless (VP8L)
        ok, buf = cv2.imencode(ext, bgr, params)
        assert ok
        assert compressed_image_size(buf.tobytes()) == (kind, 53, 37), ext
        assert decode_compressed(kind, buf.tobytes()).shape == img.shape
    ok, lossy = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 80])  # VP8
    assert compressed_image_size(lossy.tobytes()) == ("webp", 53, 37)
    assert compressed_image_size(png_bomb(20000, 3)) == ("png", 20000, 3)
    assert compressed_image_size(jpeg_bomb(photo, 16000, 12000)) == ("jpeg", 16000, 12000)
    with pytest.raises(ImageDecodeError, match="cut short|no JPEG frame header"):
        compressed_image_size(encode_compressed(img)[:40])


def test_compressed_size_limits_name_the_limit_that_is_broken() -> None:
    with pytest.raises(ImageDecodeError, match="20000x4 exceeds the limit of 16384 px a side"):
        decode_compressed("png", png_bomb(20000, 4))
    with pytest.raises(ImageDecodeError, match=r"9000x9000 \(81000000 pixels\) exceeds the limit of 67108864 pixels"):
        decode_compressed("png", png_bomb(9000, 9000))


BOMB_MEMORY_SCRIPT = """
import resource, sys
sys.path.insert(0, {test_dir!r})
import numpy as np
from test_image_codec import jpeg_bomb, png_bomb
from petr_ros.image_codec import ImageDecodeError, decode_compressed
photo = np.zeros((16, 16, 3), np.uint8)
bombs = [png_bomb(16000, 16000), jpeg_bomb(photo, 16000, 16000)]
decode_compressed("png", png_bomb(64, 64))  # OpenCV's decoders loaded before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for bomb in bombs:
    try:
        decode_compressed("png", bomb)
        print("decoded")
    except ImageDecodeError as exc:
        print("refused:", exc)
print("growth_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, "sizes", [len(b) for b in bombs])
"""


def test_decompression_bombs_are_refused_before_decoding() -> None:
    """A 16000x16000 PNG of a few hundred KB (256 MB of pixels) and a tiny JPEG declaring the same size are refused
    from their headers: the peak memory of the process does not grow by more than a few MB."""
    import subprocess
    import sys

    script = BOMB_MEMORY_SCRIPT.format(test_dir=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines[:2]] == ["refused", "refused"], out.stdout
    assert "256000000 pixels" in lines[0] and "limit of 67108864 pixels" in lines[0]
    growth_kb = int(lines[2].split()[1])
    sizes = [int(v) for v in lines[2].split("[")[1].rstrip("]").split(",")]
    assert max(sizes) < 1_000_000  # they really are small files
    assert growth_kb < 20 * 1024, f"peak memory grew by {growth_kb / 1024:.0f} MB"

"""Raw and compressed image buffers -> RGB uint8 arrays (pure logic: no ROS types).

The node hands over the fields of a `sensor_msgs/Image` (encoding, width, height, step, is_bigendian, data) or a
`sensor_msgs/CompressedImage` (format, data). Every problem is an `ImageDecodeError` (a ValueError) whose message
says what is wrong, so the node can log it and count a drop instead of crashing.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# Largest side and pixel count accepted: larger buffers are far beyond any camera and would only cost memory.
MAX_SIDE = 16384
MAX_PIXELS = 64 * 1024 * 1024

# encoding -> (channels, bytes per channel, layout) for the colour and mono encodings we convert.
_RAW_FORMATS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "8UC3": (3, 1, "bgr"),  # OpenCV's default order, as cv_bridge treats it
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "8UC4": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "8UC1": (1, 1, "mono"),
    "mono16": (1, 2, "mono16"),
    "rgb16": (3, 2, "rgb16"),
    "bgr16": (3, 2, "bgr16"),
    # Packed 4:2:2, 2 bytes per pixel. ROS's "yuv422" is UYVY byte order; "yuv422_yuy2" and "yuyv" are YUYV.
    "yuv422": (2, 1, "uyvy"),
    "uyvy": (2, 1, "uyvy"),
    "yuv422_yuy2": (2, 1, "yuyv"),
    "yuyv": (2, 1, "yuyv"),
}

# Single-channel measurement images: decodable, but no colour or intensity a pose network could use.
_REJECTED: dict[str, str] = {
    "16UC1": "a depth image (16UC1, usually millimetres), not a colour or mono image",
    "32FC1": "a depth image (32FC1, usually metres), not a colour or mono image",
    "16SC1": "a single-channel signed 16-bit measurement image, not a colour or mono image",
    "32SC1": "a single-channel 32-bit measurement image, not a colour or mono image",
    "64FC1": "a single-channel 64-bit float measurement image, not a colour or mono image",
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_RAW_FORMATS)
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "jpg", "png", "bmp", "tiff", "webp")


class ImageDecodeError(ValueError):
    """An image buffer that cannot be turned into an RGB image; the message says why."""


def check_raw_header(encoding: str, width: int, height: int, step: int, data_len: int) -> tuple[int, int, str]:
    """Validate the header fields of a raw image; return (channels, bytes per channel, layout).

    Raises ImageDecodeError for an unknown or rejected encoding, zero or huge sizes, a step shorter than a row,
    or data shorter than step * height.
    """
    if encoding in _REJECTED:
        raise ImageDecodeError(f"encoding '{encoding}' rejected: {_REJECTED[encoding]}; pose estimation needs one of "
                               f"{', '.join(SUPPORTED_ENCODINGS)}")
    if encoding not in _RAW_FORMATS:
        raise ImageDecodeError(f"unsupported image encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    channels, depth, layout = _RAW_FORMATS[encoding]
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageDecodeError(f"image size {width}x{height} exceeds the limit ({MAX_SIDE} px a side, "
                               f"{MAX_PIXELS} pixels)")
    if layout in ("uyvy", "yuyv") and width % 2:
        raise ImageDecodeError(f"{encoding} needs an even width (2 pixels share U and V), got {width}")
    row = width * channels * depth
    if step < row:
        raise ImageDecodeError(f"step {step} is shorter than one row of {width} px {encoding} ({row} bytes)")
    if data_len < step * height:
        raise ImageDecodeError(f"data has {data_len} bytes, expected step*height = {step}*{height} = {step * height}")
    return channels, depth, layout


def _to_array(data: Any) -> np.ndarray:
    """A uint8 view of a bytes-like or array buffer (no copy where possible)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def decode_raw(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int, data: Any) -> np.ndarray:
    """Convert a raw image buffer (sensor_msgs/Image fields) to an (height, width, 3) uint8 RGB array.

    Rows are read `step` bytes apart (padding ignored); 16-bit data honours `is_bigendian` and is scaled to 8 bits
    (value >> 8). Raises ImageDecodeError with the reason when the buffer cannot be converted.
    """
    buf = _to_array(data)
    channels, depth, layout = check_raw_header(encoding, int(width), int(height), int(step), buf.size)
    rows = buf[: step * height].reshape(height, step)[:, : width * channels * depth]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
        pixels = (pixels16 >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)

    if layout in ("rgb", "rgb16"):
        return np.ascontiguousarray(pixels)
    if layout in ("bgr", "bgr16"):
        return np.ascontiguousarray(pixels[..., ::-1])
    if layout == "rgba":
        return np.ascontiguousarray(pixels[..., :3])
    if layout == "bgra":
        return np.ascontiguousarray(pixels[..., 2::-1])
    if layout in ("mono", "mono16"):
        return np.repeat(pixels, 3, axis=2)
    return _yuv422_to_rgb(np.ascontiguousarray(pixels), layout)


def _yuv422_to_rgb(pixels: np.ndarray, layout: str) -> np.ndarray:
    """Packed 4:2:2 (H, W, 2) -> RGB with OpenCV's BT.601 conversion."""
    import cv2

    code = cv2.COLOR_YUV2RGB_UYVY if layout == "uyvy" else cv2.COLOR_YUV2RGB_YUYV
    return cv2.cvtColor(pixels, code)


def encode_raw(rgb: np.ndarray, encoding: str, big_endian: bool | None = None, padding: int = 0) -> dict[str, Any]:
    """The inverse of decode_raw for tests, benchmarks and the bag tools: RGB uint8 -> Image fields.

    Returns a dict with encoding, width, height, step, is_bigendian and data (bytes); `padding` extra bytes per row.
    16-bit encodings store value * 257 (so >> 8 gives the 8-bit value back).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be a (H, W, 3) uint8 array, got shape {rgb.shape} dtype {rgb.dtype}")
    if encoding not in _RAW_FORMATS:
        raise ValueError(f"cannot encode '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    _, depth, layout = _RAW_FORMATS[encoding]
    h, w, _ = rgb.shape
    if layout in ("rgb", "rgb16"):
        px = rgb
    elif layout in ("bgr", "bgr16"):
        px = rgb[..., ::-1]
    elif layout == "rgba":
        px = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif layout == "bgra":
        px = np.concatenate([rgb[..., ::-1], np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif layout in ("mono", "mono16"):
        px = _gray(rgb)[..., None]
    else:
        # BT.601 limited range (Y 16..235), what camera drivers send and OpenCV's YUV422 decoding expects;
        # U and V are averaged over each pixel pair.
        f = rgb.astype(np.float64) / 255.0
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        y = np.clip(np.rint(16 + 65.481 * r + 128.553 * g + 24.966 * b), 0, 255).astype(np.uint8)
        cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
        cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
        u = np.clip(np.rint((cb[:, 0::2] + cb[:, 1::2]) / 2), 0, 255).astype(np.uint8)
        v = np.clip(np.rint((cr[:, 0::2] + cr[:, 1::2]) / 2), 0, 255).astype(np.uint8)
        px = np.empty((h, w, 2), np.uint8)
        px[..., 0 if layout == "yuyv" else 1] = y
        chroma = px[..., 1 if layout == "yuyv" else 0]
        chroma[:, 0::2] = u
        chroma[:, 1::2] = v
    if depth == 2:
        bigendian = sys.byteorder == "big" if big_endian is None else big_endian
        px = (px.astype(np.uint16) * 257).astype(">u2" if bigendian else "<u2")
    else:
        bigendian = False if big_endian is None else big_endian
    row = np.ascontiguousarray(px).reshape(h, -1).view(np.uint8)
    if padding:
        row = np.concatenate([row, np.zeros((h, padding), np.uint8)], axis=1)
    return {
        "encoding": encoding,
        "width": w,
        "height": h,
        "step": int(row.shape[1]),
        "is_bigendian": int(bool(bigendian)),
        "data": row.tobytes(),
    }


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def decode_compressed(fmt: str, data: Any) -> np.ndarray:
    """Decode a compressed image (sensor_msgs/CompressedImage format + data) to RGB uint8 with OpenCV.

    The format string is informational in ROS ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...): the bytes are
    decoded by content. Raises ImageDecodeError for empty, undecodable or oversized data, and for
    compressed depth ("compressedDepth").
    """
    import cv2

    if "compresseddepth" in (fmt or "").lower().replace(" ", ""):
        raise ImageDecodeError(f"compressed depth image ('{fmt}') rejected: pose estimation needs a colour image")
    buf = _to_array(data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image has no data")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageDecodeError(f"compressed image ({buf.size} bytes, format '{fmt}') could not be decoded")
    h, w = image.shape[:2]
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageDecodeError(f"decoded image size {w}x{h} exceeds the limit ({MAX_SIDE} px a side)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"compressed image decodes to {image.dtype} pixels, expected 8 or 16 bit")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """RGB uint8 -> JPEG or PNG bytes (for publishers, tests and the bag tools)."""
    import cv2

    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"cannot encode format '{fmt}' (jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, out = cv2.imencode(ext, cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {np.asarray(rgb).shape} image as {fmt}")
    return out.tobytes()

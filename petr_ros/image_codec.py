"""Raw and compressed image buffers -> RGB uint8 arrays (pure logic: no ROS types).

The node hands over the fields of a `sensor_msgs/Image` (encoding, width, height, step, is_bigendian, data) or a
`sensor_msgs/CompressedImage` (format, data). Every problem is an `ImageDecodeError` (a ValueError) whose message
says what is wrong, so the node can log it and count a drop instead of crashing.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# Largest side and pixel count accepted: larger buffers are far beyond any camera and would only cost memory
# (64 M pixels decode to 192 MB of RGB).
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
    # Colour filter array mosaics straight from industrial sensors; the name gives the top-left 2x2 block.
    **{f"bayer_{p}{bits}": (1, bits // 8, f"bayer_{p}") for p in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)},
    # Planar 4:2:0: a full-resolution Y plane, then one half-height plane of interleaved chroma (NV12: U first).
    "nv12": (1, 1, "nv12"),
    "nv21": (1, 1, "nv21"),
}

# ROS Bayer pattern (the top-left 2x2 block) -> OpenCV's conversion. OpenCV's classic code names (BayerBG, ...) name
# a block one pixel further in, so use its aliases that spell the top-left block as ROS does.
_BAYER_CODES = {"bayer_rggb": "COLOR_BayerRGGB2RGB", "bayer_bggr": "COLOR_BayerBGGR2RGB",
                "bayer_gbrg": "COLOR_BayerGBRG2RGB", "bayer_grbg": "COLOR_BayerGRBG2RGB"}

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


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """ImageDecodeError naming the limit that `width` x `height` breaks (zero size, MAX_SIDE or MAX_PIXELS)."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{what} has zero size ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageDecodeError(f"{what} size {width}x{height} exceeds the limit of {MAX_SIDE} px a side")
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(f"{what} size {width}x{height} ({width * height} pixels) exceeds the limit of "
                               f"{MAX_PIXELS} pixels ({MAX_PIXELS // (1024 * 1024)} M)")


def check_raw_header(encoding: str, width: int, height: int, step: int, data_len: int) -> tuple[int, int, str]:
    """Validate the header fields of a raw image; return (channels, bytes per channel, layout).

    Raises ImageDecodeError for an unknown or rejected encoding, zero or huge sizes, a step shorter than a row,
    or data shorter than the rows the encoding needs (step * height; 1.5 * step * height for NV12/NV21).
    """
    if encoding in _REJECTED:
        raise ImageDecodeError(f"encoding '{encoding}' rejected: {_REJECTED[encoding]}; pose estimation needs one of "
                               f"{', '.join(SUPPORTED_ENCODINGS)}")
    if encoding not in _RAW_FORMATS:
        raise ImageDecodeError(f"unsupported image encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    channels, depth, layout = _RAW_FORMATS[encoding]
    check_image_size(width, height)
    if layout in ("uyvy", "yuyv") and width % 2:
        raise ImageDecodeError(f"{encoding} needs an even width (2 pixels share U and V), got {width}")
    if layout in ("nv12", "nv21") and (width % 2 or height % 2):
        raise ImageDecodeError(f"{encoding} needs an even width and height (2x2 pixels share U and V), "
                               f"got {width}x{height}")
    if layout.startswith("bayer") and (width < 2 or height < 2):
        raise ImageDecodeError(f"{encoding} needs at least one 2x2 colour block, got {width}x{height}")
    row = width * channels * depth
    if step < row:
        raise ImageDecodeError(f"step {step} is shorter than one row of {width} px {encoding} ({row} bytes)")
    rows = _buffer_rows(layout, height)
    if data_len < step * rows:
        raise ImageDecodeError(f"data has {data_len} bytes, expected step*{'1.5*' if rows != height else ''}height = "
                               f"{step}*{height}{'*1.5' if rows != height else ''} = {step * rows}")
    return channels, depth, layout


def _buffer_rows(layout: str, height: int) -> int:
    """Rows of `step` bytes a buffer holds: the image rows, plus the half-height chroma plane for NV12/NV21."""
    return height * 3 // 2 if layout in ("nv12", "nv21") else height


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
    nrows = _buffer_rows(layout, height)
    rows = buf[: step * nrows].reshape(nrows, step)[:, : width * channels * depth]
    if layout in ("nv12", "nv21"):
        return _nv_to_rgb(np.ascontiguousarray(rows), layout)
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
        if layout.startswith("bayer"):
            # Demosaic at 16 bits (OpenCV supports it), then scale: interpolating after >> 8 would add rounding.
            return (_demosaic(pixels16[..., 0].astype(np.uint16), layout) >> 8).astype(np.uint8)
        pixels = (pixels16 >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)

    if layout.startswith("bayer"):
        return _demosaic(np.ascontiguousarray(pixels[..., 0]), layout)
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


def _demosaic(mosaic: np.ndarray, layout: str) -> np.ndarray:
    """A (H, W) Bayer mosaic (uint8 or uint16) -> (H, W, 3) RGB of the same dtype, OpenCV's bilinear demosaicing."""
    import cv2

    return cv2.cvtColor(mosaic, getattr(cv2, _BAYER_CODES[layout]))


def _nv_to_rgb(planes: np.ndarray, layout: str) -> np.ndarray:
    """NV12/NV21 (1.5 H, W) Y plane + interleaved chroma plane -> RGB with OpenCV's BT.601 conversion."""
    import cv2

    return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_NV12 if layout == "nv12" else cv2.COLOR_YUV2RGB_NV21)


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
    elif layout.startswith("bayer"):
        if h % 2 or w % 2:
            raise ValueError(f"{encoding} encoding needs an even width and height, got {w}x{h}")
        pattern = layout.split("_")[1]  # e.g. "grbg": row 0 holds G R, row 1 holds B G
        px = np.empty((h, w, 1), np.uint8)
        for k, colour in enumerate(pattern):
            dy, dx = divmod(k, 2)
            px[dy::2, dx::2, 0] = rgb[dy::2, dx::2, "rgb".index(colour)]
    else:
        # BT.601 limited range (Y 16..235), what camera drivers send and OpenCV's YUV decoding expects.
        y, cb, cr = _bt601_limited(rgb)
        if layout in ("nv12", "nv21"):
            if h % 2 or w % 2:
                raise ValueError(f"{encoding} encoding needs an even width and height, got {w}x{h}")
            # U and V averaged over each 2x2 block, interleaved in a half-height plane below Y.
            first, second = (cb, cr) if layout == "nv12" else (cr, cb)
            chroma = np.empty((h // 2, w), np.uint8)
            chroma[:, 0::2], chroma[:, 1::2] = _block_mean_2x2(first), _block_mean_2x2(second)
            px = np.concatenate([y, chroma], axis=0)[..., None]
        else:
            # U and V are averaged over each pixel pair.
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
    row = np.ascontiguousarray(px).reshape(px.shape[0], -1).view(np.uint8)
    if padding:
        row = np.concatenate([row, np.zeros((row.shape[0], padding), np.uint8)], axis=1)
    return {
        "encoding": encoding,
        "width": w,
        "height": h,
        "step": int(row.shape[1]),
        "is_bigendian": int(bool(bigendian)),
        "data": row.tobytes(),
    }


def _bt601_limited(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 -> (Y uint8, Cb float, Cr float), BT.601 limited range."""
    f = rgb.astype(np.float64) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = np.clip(np.rint(16 + 65.481 * r + 128.553 * g + 24.966 * b), 0, 255).astype(np.uint8)
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, cb, cr


def _block_mean_2x2(c: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((c[0::2, 0::2] + c[0::2, 1::2] + c[1::2, 0::2] + c[1::2, 1::2]) / 4), 0, 255)


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): they carry the frame size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Header bytes read at most while looking for the size (JPEG: EXIF/ICC segments may come before the frame header).
_HEADER_SCAN_BYTES = 1 << 20


def compressed_image_size(data: Any) -> tuple[str, int, int]:
    """(container, width, height) read from the header of a JPEG, PNG, BMP, WebP or TIFF stream, without decoding.

    This is what lets a decoder refuse a decompression bomb (a small file declaring a huge image) before it
    allocates anything. Raises ImageDecodeError when the stream is none of these or its header is cut short.
    """
    b = bytes(_to_array(data)[:_HEADER_SCAN_BYTES])

    def u16(off: int, order: str = "big") -> int:
        return int.from_bytes(b[off:off + 2], order)

    def u32(off: int, order: str = "big") -> int:
        return int.from_bytes(b[off:off + 4], order)

    try:
        if b.startswith(b"\x89PNG\r\n\x1a\n"):
            if b[12:16] != b"IHDR":
                raise ImageDecodeError("PNG stream without an IHDR header chunk")
            return "png", u32(16), u32(20)
        if b.startswith(b"\xff\xd8"):
            return ("jpeg", *_jpeg_size(b))
        if b.startswith(b"BM") and len(b) >= 26:
            if u32(14, "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
                return "bmp", u16(18, "little"), u16(20, "little")
            width = int.from_bytes(b[18:22], "little", signed=True)
            height = int.from_bytes(b[22:26], "little", signed=True)
            return "bmp", abs(width), abs(height)  # a negative height means rows stored top-down
        if b.startswith(b"RIFF") and b[8:12] == b"WEBP":
            return ("webp", *_webp_size(b))
        if b[:4] in (b"II*\x00", b"MM\x00*"):
            return ("tiff", *_tiff_size(b))
    except IndexError as exc:
        raise ImageDecodeError("compressed image header is cut short") from exc
    raise ImageDecodeError("not a JPEG, PNG, BMP, WebP or TIFF stream")


def _jpeg_size(b: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(b):
        if b[pos] != 0xFF:
            raise ImageDecodeError(f"JPEG marker expected at byte {pos}")
        marker = b[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(b[pos + 2:pos + 4], "big")
        if marker in _JPEG_SOF:
            if pos + 9 > len(b):
                break
            return int.from_bytes(b[pos + 7:pos + 9], "big"), int.from_bytes(b[pos + 5:pos + 7], "big")
        if marker in (0xDA, 0xD9) or length < 2:  # scan data or end before any frame header
            raise ImageDecodeError("JPEG stream without a frame header before its image data")
        pos += 2 + length
    raise ImageDecodeError(f"no JPEG frame header in the first {min(len(b), _HEADER_SCAN_BYTES)} bytes")


def _webp_size(b: bytes) -> tuple[int, int]:
    chunk = b[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one after the 0x2f signature
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame's start code
        if b[23:26] != b"\x9d\x01\x2a":
            raise ImageDecodeError("WebP lossy stream without a key frame start code")
        return int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
    raise ImageDecodeError(f"WebP stream with an unknown first chunk {chunk!r}")


def _tiff_size(b: bytes) -> tuple[int, int]:
    order = "little" if b[:2] == b"II" else "big"
    ifd = int.from_bytes(b[4:8], order)
    if ifd + 2 > len(b):
        raise ImageDecodeError("TIFF image directory lies beyond the header bytes read")
    size: dict[int, int] = {}
    for i in range(int.from_bytes(b[ifd:ifd + 2], order)):
        entry = b[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            size[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], order)
    if 256 not in size or 257 not in size:
        raise ImageDecodeError("TIFF image directory without a width and height")
    return size[256], size[257]


def decode_compressed(fmt: str, data: Any) -> np.ndarray:
    """Decode a compressed image (sensor_msgs/CompressedImage format + data) to RGB uint8 with OpenCV.

    The format string is informational in ROS ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...): the bytes are
    decoded by content. The image size is read from the header first and checked against MAX_SIDE / MAX_PIXELS, so
    a small file declaring a huge image is refused before any pixel memory is allocated. Raises ImageDecodeError
    for empty, unrecognised, undecodable or oversized data, and for compressed depth ("compressedDepth").
    """
    import cv2

    if "compresseddepth" in (fmt or "").lower().replace(" ", ""):
        raise ImageDecodeError(f"compressed depth image ('{fmt}') rejected: pose estimation needs a colour image")
    buf = _to_array(data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image has no data")
    try:
        container, width, height = compressed_image_size(buf)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"compressed image ({buf.size} bytes, format '{fmt}') could not be decoded: {exc}") \
            from None
    check_image_size(width, height, f"compressed {container} image ({buf.size} bytes) declares an image whose")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageDecodeError(f"compressed image ({buf.size} bytes, format '{fmt}') could not be decoded")
    h, w = image.shape[:2]
    check_image_size(w, h, "decoded image")  # in case the stream's real size differs from its header's
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

"""Camera intrinsics and the placement of root-relative skeletons in the camera optical frame (pure logic).

The lifter predicts joints relative to the pelvis. To publish them where the person is, the root translation T is
solved from the 2D keypoints, the root-relative 3D joints and the intrinsics K by linear least squares: a point
X_j + T projects to u_j = fx (X_j + T)_x / (X_j + T)_z + cx (and likewise v), which is linear in T:

    fx Tx - (u_j - cx) Tz = (u_j - cx) Z_j - fx X_j
    fy Ty - (v_j - cy) Tz = (v_j - cy) Z_j - fy Y_j

Each joint's two rows are weighted by its confidence. By default the root is held on the camera ray through its
own keypoint, T = z r - X_root with r = ((u_root - cx) / fx, (v_root - cy) / fy, 1), and only the depth z is
fitted to the other joints (one unknown, same rows): the sideways position then comes from the root's own
detection, which is measured, instead of from the lifted shape, whose errors (tens of millimetres per joint) a free
fit turns into a sideways shift of the whole body. With exact data both give the same T; the free 3-unknown fit is
used when the root's keypoint is not confident enough. Without CameraInfo the depth is unobservable, so the node
assumes a default focal length (DEFAULT_FOV_DEG horizontal field of view unless given) and puts the pelvis on the
ray through its 2D position at a default depth (DEFAULT_DEPTH_M): shape and orientation are right, the distance is
a stated assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from petr_ros.skeleton import EXTRAPOLATED_JOINTS, NUM_JOINTS, ROOT
from petr_ros.validation import check_points

# Without intrinsics: a typical webcam / phone field of view and a typical distance of a person from the camera.
DEFAULT_FOV_DEG = 60.0
DEFAULT_DEPTH_M = 3.0
DEFAULT_FOCAL_PX = 0.0  # 0: the focal length of a DEFAULT_FOV_DEG field of view
# A least-squares root closer than this (metres) is not physical (behind or inside the camera): fall back.
MIN_DEPTH_M = 0.1


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the (rectified) image: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"intrinsics must be finite, got fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be > 0, got fx={self.fx} fy={self.fy}")

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_k(cls, k: np.ndarray | list[float], width: int = 0, height: int = 0) -> Intrinsics:
        """From a row-major 3x3 K (as in sensor_msgs/CameraInfo.k, 9 values). ValueError when K is unusable."""
        arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if arr.size != 9:
            raise ValueError(f"K must have 9 values (row-major 3x3), got {arr.size}")
        return cls(fx=float(arr[0]), fy=float(arr[4]), cx=float(arr[2]), cy=float(arr[5]), width=width, height=height)

    @classmethod
    def default(cls, width: int, height: int, focal_px: float = DEFAULT_FOCAL_PX) -> Intrinsics:
        """Assumed intrinsics for an image without CameraInfo: principal point at the centre, square pixels, and
        the focal length `focal_px`, or (0) the one giving a DEFAULT_FOV_DEG horizontal field of view."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        f = focal_px if focal_px > 0 else default_focal_length(width)
        return cls(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)


# Intrinsics accepted only with a pinhole field of view in this range (degrees, each axis) and the principal point
# at most this fraction of the image size outside it: fx = 1e-9 or 1e12 would place people at 1e11 m.
FOV_RANGE_DEG = (1.0, 170.0)
PRINCIPAL_POINT_MARGIN = 0.5


def intrinsics_error(k: Intrinsics, width: int, height: int) -> str | None:
    """Why intrinsics `k` are implausible for a `width` x `height` image (None when plausible): a pinhole field of
    view outside FOV_RANGE_DEG on either axis, or the principal point far outside the image (non-finite or
    non-positive values cannot make an `Intrinsics`)."""
    lo, hi = FOV_RANGE_DEG
    for axis, size, f in (("horizontal", width, k.fx), ("vertical", height, k.fy)):
        fov = math.degrees(2.0 * math.atan(size / (2.0 * f)))
        if not lo <= fov <= hi:
            return (f"{axis} field of view {fov:.3g} deg (f={f:.6g} px for {size} px) is outside "
                    f"[{lo:g}, {hi:g}] deg")
    m = PRINCIPAL_POINT_MARGIN
    if not (-m * width <= k.cx <= (1 + m) * width and -m * height <= k.cy <= (1 + m) * height):
        return (f"principal point ({k.cx:.6g}, {k.cy:.6g}) px lies far outside the {width}x{height} image "
                f"(allowed: up to {m:.0%} of its size beyond the edges)")
    return None


def default_focal_length(width: int, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length in pixels that gives a horizontal field of view of `fov_deg` degrees to an image `width` wide."""
    return width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Project camera-frame points (..., 3) to pixels (..., 2). Points must be in front of the camera (z > 0)."""
    pts = check_points(points, "points", dims=3, dtype=np.float64) if np.ndim(points) >= 2 else np.asarray(points)
    z = pts[..., 2]
    if np.any(z <= 0):
        raise ValueError("points must have z > 0 (in front of the camera) to be projected")
    u = intrinsics.fx * pts[..., 0] / z + intrinsics.cx
    v = intrinsics.fy * pts[..., 1] / z + intrinsics.cy
    return np.stack([u, v], axis=-1)


def solve_root_translation(
    keypoints2d: np.ndarray,
    joints3d: np.ndarray,
    intrinsics: Intrinsics,
    confidences: np.ndarray | None = None,
    min_confidence: float = 0.1,
    anchor: int | None = ROOT,
) -> np.ndarray | None:
    """Root translation T (3,) metres so that joints3d + T projects onto keypoints2d under `intrinsics`.

    keypoints2d: (J, 2) pixels; joints3d: (J, 3) root-relative metres in camera axes; confidences: (J,) weights
    (joints below `min_confidence` are ignored). anchor: the joint kept exactly on the ray through its keypoint, only
    the depth being fitted (module docstring); None, or an anchor below `min_confidence`: T's three components are
    fitted freely. Returns None when the system is degenerate (fewer than 2 usable joints, a singular system, or a
    solution closer than MIN_DEPTH_M), so callers can fall back to a default depth.
    """
    kp = check_points(keypoints2d, "keypoints2d", dims=2, dtype=np.float64)
    xyz = check_points(joints3d, "joints3d", joints=kp.shape[-2], dims=3, dtype=np.float64)
    if kp.ndim != 2:
        raise ValueError(f"keypoints2d must be one pose (J, 2), got shape {kp.shape}")
    w = np.ones(kp.shape[0]) if confidences is None else np.asarray(confidences, dtype=np.float64).reshape(-1)
    if w.shape[0] != kp.shape[0]:
        raise ValueError(f"confidences must have {kp.shape[0]} values, got shape {np.shape(confidences)}")
    w = np.where(np.isfinite(w) & (w >= min_confidence), w, 0.0)
    if np.count_nonzero(w) < 2:
        return None
    du = kp[:, 0] - intrinsics.cx
    dv = kp[:, 1] - intrinsics.cy
    zeros = np.zeros_like(du)
    a = np.concatenate(
        [
            np.stack([np.full_like(du, intrinsics.fx), zeros, -du], axis=1),
            np.stack([zeros, np.full_like(dv, intrinsics.fy), -dv], axis=1),
        ]
    )
    b = np.concatenate([du * xyz[:, 2] - intrinsics.fx * xyz[:, 0], dv * xyz[:, 2] - intrinsics.fy * xyz[:, 1]])
    ww = np.concatenate([w, w])
    if anchor is not None and not -kp.shape[0] <= anchor < kp.shape[0]:
        raise ValueError(f"anchor must index one of the {kp.shape[0]} joints or be None, got {anchor}")
    if anchor is not None and w[anchor] > 0:
        # T = z r - X_anchor: the rows become a @ (z r) = b + a @ X_anchor, linear in the one unknown z.
        ray = np.array([du[anchor] / intrinsics.fx, dv[anchor] / intrinsics.fy, 1.0])
        a_z = a @ ray
        b_z = b + a @ xyz[anchor]
        normal = float(np.sum(ww * a_z * a_z))
        # Degenerate when the other joints carry no depth information (all on the anchor's ray, or unusable).
        if not normal > 1e-12 * max(1.0, float(np.sum(ww * (a * a).sum(1)))):
            return None
        sol = float(np.sum(ww * a_z * b_z)) / normal * ray - xyz[anchor]
    else:
        sw = np.sqrt(ww)
        sol, _, rank, _ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
        if rank < 3:
            return None
    if not np.all(np.isfinite(sol)) or sol[2] < MIN_DEPTH_M:
        return None
    # Every used joint must end up in front of the camera too.
    if np.any((xyz[w > 0, 2] + sol[2]) <= 0):
        return None
    return sol


def root_at_depth(root_pixel: np.ndarray, intrinsics: Intrinsics, depth: float = DEFAULT_DEPTH_M) -> np.ndarray:
    """The point at `depth` metres along the camera ray through pixel `root_pixel` (2,): where the root goes when
    the distance cannot be measured."""
    if not depth > 0:
        raise ValueError(f"depth must be > 0 metres, got {depth}")
    u, v = np.asarray(root_pixel, dtype=np.float64).reshape(2)
    return np.array([(u - intrinsics.cx) / intrinsics.fx * depth, (v - intrinsics.cy) / intrinsics.fy * depth, depth])


def place_skeleton(
    keypoints2d: np.ndarray,
    joints3d: np.ndarray,
    intrinsics: Intrinsics | None,
    image_size: tuple[int, int],
    confidences: np.ndarray | None = None,
    default_depth: float = DEFAULT_DEPTH_M,
    default_focal_px: float = DEFAULT_FOCAL_PX,
) -> tuple[np.ndarray, bool]:
    """Camera-frame joints (J, 3) for a root-relative skeleton, and whether the placement is metric.

    With `intrinsics`: the least-squares root translation, the root on its keypoint's ray when that keypoint is
    confident (`solve_root_translation`; metric=True), fitted to the measured joints only (the extrapolated head
    top, `skeleton.EXTRAPOLATED_JOINTS`, is left out: its 2D is a guess of where it lies; measured on the Pose2Sim
    cam01 reference, pelvis error 0.107 -> 0.102 m); if that is degenerate, or without
    intrinsics, the default-depth placement (metric=False) using `intrinsics` or the default ones for
    `image_size` = (width, height).
    """
    xyz = check_points(joints3d, "joints3d", joints=NUM_JOINTS, dims=3, dtype=np.float64)
    kp = check_points(keypoints2d, "keypoints2d", joints=NUM_JOINTS, dims=2, dtype=np.float64)
    if intrinsics is not None:
        weights = np.ones(NUM_JOINTS) if confidences is None else np.array(confidences, dtype=np.float64).reshape(-1)
        if weights.shape != (NUM_JOINTS,):
            raise ValueError(f"confidences must have {NUM_JOINTS} values, got shape {np.shape(confidences)}")
        weights[list(EXTRAPOLATED_JOINTS)] = 0.0
        t = solve_root_translation(kp, xyz, intrinsics, weights)
        if t is not None:
            return xyz + t, True
    k = intrinsics if intrinsics is not None else Intrinsics.default(*image_size, focal_px=default_focal_px)
    return xyz - xyz[ROOT] + root_at_depth(kp[ROOT], k, default_depth), False

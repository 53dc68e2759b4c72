"""Pictures of what petr_ros outputs, with matplotlib (Agg, headless) and plain arrays only (no ROS):

* 2D keypoints over the image frame, per person and side;
* the 3D skeletons in the camera frame with each joint's rotation drawn as a small RGB axis triad (the frame
  a PoseArray shows in RViz);
* a MarkerArray-like renderer (`MarkerPrimitive`: sphere lists and line lists with per-point colours), so the
  markers a node published can be drawn the way RViz would show them;
* side-by-side panels, contact sheets, PNG and GIF files (written atomically, `petr_ros.fileio`);
* the package's one colour palette (`person_colours`) and the OpenCV drawing of the node's debug image.

3D axes: points are in the camera optical frame (x right, y down, z forward); plots show x to the right, depth z
into the picture and -y up, so a standing person stands upright.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from petr_ros.fileio import atomic_path
from petr_ros.kinematics import quaternion_to_matrix
from petr_ros.results import PersonResult
from petr_ros.skeleton import BONES, NUM_JOINTS, joint_side
from petr_ros.validation import check_points

AXIS_COLOURS = ((0.9, 0.1, 0.1, 1.0), (0.1, 0.75, 0.1, 1.0), (0.1, 0.3, 0.95, 1.0))  # joint x, y, z axes


def person_colours(person_id: int) -> dict[str, tuple[float, float, float]]:
    """The package's one palette (markers, debug image, pictures): a hue per person in golden-ratio steps (so
    neighbouring ids differ), the person's left side lighter, the right darker, the centre in between; RGB in
    [0, 1]."""
    hue = (0.61803398875 * max(int(person_id), 0) + 0.08) % 1.0
    return {side: colorsys.hsv_to_rgb(hue, sat, val)
            for side, (sat, val) in {"left": (0.45, 1.0), "centre": (0.75, 0.9), "right": (0.95, 0.6)}.items()}


def joint_colours(person_id: int, alpha: float = 1.0) -> np.ndarray:
    """(17, 4) RGBA in [0, 1] per joint of a person, by side (`person_colours`)."""
    colours = person_colours(person_id)
    return np.array([(*colours[joint_side(j)], alpha) for j in range(NUM_JOINTS)], np.float64)


@dataclass
class MarkerPrimitive:
    """One RViz-like marker from plain arrays: 'spheres' (points (N, 3), `scale` = diameter in metres) or
    'lines' (points (2M, 3) taken in pairs as segments, `scale` = width in metres); colours (N, 4) RGBA."""

    kind: str
    points: np.ndarray
    colours: np.ndarray
    scale: float = 0.03
    label: str = field(default="")

    def __post_init__(self) -> None:
        if self.kind not in ("spheres", "lines"):
            raise ValueError(f"marker kind must be 'spheres' or 'lines', got {self.kind!r}")
        self.points = np.asarray(self.points, np.float64).reshape(-1, 3)
        self.colours = np.asarray(self.colours, np.float64).reshape(-1, 4)
        if len(self.colours) == 1:
            self.colours = np.repeat(self.colours, len(self.points), axis=0)
        if len(self.colours) != len(self.points):
            raise ValueError(f"marker colours {self.colours.shape} must match its points {self.points.shape}")
        if self.kind == "lines" and len(self.points) % 2:
            raise ValueError(f"a line list needs an even number of points, got {len(self.points)}")


def skeleton_primitives(person: PersonResult, joint_radius: float = 0.03, bone_width: float = 0.02,
                        axis_length: float = 0.12) -> list[MarkerPrimitive]:
    """The markers of one person in the camera frame: bones (line list, child-side colour), the joint axes (line
    list, x red, y green, z blue) and the joints (sphere list)."""
    pos = check_points(person.joints3d_camera, "joints3d_camera", joints=NUM_JOINTS, dims=3, dtype=np.float64)
    colours = joint_colours(person.person_id)
    bone_points = np.stack([pos[[p, c]] for c, p in BONES]).reshape(-1, 3)
    bone_colours = np.repeat(colours[[c for c, _ in BONES]], 2, axis=0)
    return [MarkerPrimitive("lines", bone_points, bone_colours, bone_width),
            axis_primitive(pos, person.rotations, axis_length),
            MarkerPrimitive("spheres", pos, colours, 2 * joint_radius)]


def axis_primitive(positions: np.ndarray, rotations: np.ndarray, length: float = 0.1) -> MarkerPrimitive:
    """Joint frames as a line list: from each position, the columns of its rotation matrix times `length`."""
    pos = check_points(positions, "positions", dims=3, dtype=np.float64)
    rot = np.asarray(quaternion_to_matrix(np.asarray(rotations, np.float64)), np.float64)
    if rot.shape != (len(pos), 3, 3):
        raise ValueError(f"rotations must have shape ({len(pos)}, 4) to match positions {pos.shape}")
    points, colours = [], []
    for j in range(len(pos)):
        for a in range(3):
            points += [pos[j], pos[j] + length * rot[j, :, a]]
            colours += [AXIS_COLOURS[a]] * 2
    return MarkerPrimitive("lines", np.array(points), np.array(colours), 0.012)


def _to_plot(points: np.ndarray) -> np.ndarray:
    """Camera optical frame (x right, y down, z forward) -> plot axes (x right, z depth, -y up)."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def setup_axes_3d(ax: object, limits: np.ndarray, elev: float = 12.0, azim: float = -72.0, title: str = "") -> None:
    """Fix a 3D axes' view: camera-frame bounds `limits` (2, 3), equal metric scale on every axis, labels."""
    lim = np.asarray(limits, np.float64)
    lo, hi = _to_plot(lim[0])[0], _to_plot(lim[1])[0]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(hi - lo)
    ax.view_init(elev=elev, azim=azim)
    # A 0.5 m grid without tick labels: the scale reads off the grid, and tick text is most of the drawing time.
    from matplotlib.ticker import MultipleLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MultipleLocator(0.5))
        axis.set_major_formatter(NullFormatter())
    ax.set_xlabel("x right", labelpad=-12, fontsize=8)
    ax.set_ylabel("z depth", labelpad=-12, fontsize=8)
    ax.set_zlabel("up (-y)", labelpad=-12, fontsize=8)
    ax.tick_params(length=0, pad=0)
    if title:
        ax.set_title(title, fontsize=9)


def add_primitives_3d(ax: object, primitives: Sequence[MarkerPrimitive]) -> list[object]:
    """Draw marker primitives on a matplotlib 3D axes, RViz-like; returns the artists (to remove them later)."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    artists: list[object] = []
    for prim in primitives:
        if not len(prim.points):
            continue
        pts = _to_plot(prim.points)
        if prim.kind == "lines":
            width = max(0.8, prim.scale * 100)  # metres -> points at the sizes these figures are drawn
            coll = Line3DCollection(pts.reshape(-1, 2, 3), colors=prim.colours[::2], linewidths=width)
            ax.add_collection3d(coll)
            artists.append(coll)
        else:
            artists.append(ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=prim.colours,
                                      s=max(4.0, (prim.scale * 70) ** 2), depthshade=False, edgecolors="black",
                                      linewidths=0.3))
    return artists


def scene_limits(points: np.ndarray, margin: float = 0.15, min_size: float = 1.0) -> np.ndarray:
    """(2, 3) camera-frame bounds around points (N, 3) with a margin in metres, at least `min_size` per axis."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    p = p[np.all(np.isfinite(p), axis=1)]
    if not len(p):
        p = np.zeros((1, 3))
    lo, hi = p.min(axis=0) - margin, p.max(axis=0) + margin
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, min_size / 2)
    return np.stack([centre - half, centre + half])


def add_keypoints_2d(ax: object, persons: Sequence[PersonResult], min_confidence: float = 0.3) -> list[object]:
    """Each person's 2D skeleton (bones coloured by side, joints as dots) and id over an image axes; returns the
    artists."""
    from matplotlib.collections import LineCollection

    artists: list[object] = []
    for sk in persons:
        kp = np.asarray(sk.keypoints2d, np.float64)
        conf = np.asarray(sk.confidences, np.float64)
        colours = joint_colours(sk.person_id)
        bones = [(parent, child) for child, parent in BONES
                 if conf[child] >= min_confidence and conf[parent] >= min_confidence]
        if bones:
            lines = LineCollection([kp[[p, c]] for p, c in bones], colors=[colours[c] for _, c in bones],
                                   linewidths=2.0)
            ax.add_collection(lines)
            artists.append(lines)
        good = conf >= min_confidence
        artists.append(ax.scatter(kp[good, 0], kp[good, 1], c=colours[good], s=12, edgecolors="black",
                                  linewidths=0.3, zorder=3))
        top = kp[good].min(axis=0) if good.any() else kp.min(axis=0)
        artists.append(ax.text(top[0], top[1] - 8, f"id {sk.person_id}", color="white", fontsize=7,
                               bbox={"facecolor": colours[8][:3], "alpha": 0.8, "pad": 1, "edgecolor": "none"}))
    return artists


class PanelRenderer:
    """Renders [image with 2D keypoints | 3D skeletons with joint axes] panels to RGB arrays. One figure is
    reused and, when the 3D limits are fixed, only the skeleton artists change between frames (GIF speed)."""

    def __init__(self, width_px: int = 1000, height_px: int = 400, dpi: int = 100) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax2d = self.fig.add_axes((0.005, 0.0, 0.56, 0.93))
        self.ax3d = self.fig.add_axes((0.545, -0.07, 0.46, 1.06), projection="3d")
        self.fig.patch.set_facecolor("white")
        self.ax2d.set_axis_off()
        self._image: object | None = None
        self._artists: list[object] = []
        self._limits: np.ndarray | None = None
        self._title = self.fig.suptitle("", fontsize=9, y=0.995)

    def render(self, image_rgb: np.ndarray, persons: Sequence[PersonResult], title: str = "",
               primitives: Sequence[MarkerPrimitive] | None = None, limits: np.ndarray | None = None,
               axis_length: float = 0.12) -> np.ndarray:
        """One panel as (H, W, 3) uint8. `primitives`: markers to draw in 3D (default: from the persons);
        `limits`: (2, 3) camera-frame bounds of the 3D view (default: fitted to this frame)."""
        for artist in self._artists:
            artist.remove()
        self._artists = []
        image = np.asarray(image_rgb)
        if self._image is None or self._image.get_array().shape != image.shape:
            self.ax2d.cla()
            self.ax2d.set_axis_off()
            self._image = self.ax2d.imshow(image)
        else:
            self._image.set_data(image)
        self._artists += add_keypoints_2d(self.ax2d, persons)
        if primitives is None:
            primitives = [p for person in persons for p in skeleton_primitives(person, axis_length=axis_length)]
        if limits is None:
            everything = [p.points for p in primitives if len(p.points)]
            limits = scene_limits(np.concatenate(everything) if everything else np.zeros((1, 3)))
        limits = np.asarray(limits, np.float64)
        if self._limits is None or not np.array_equal(limits, self._limits):
            setup_axes_3d(self.ax3d, limits)
            self._limits = limits
        self._artists += add_primitives_3d(self.ax3d, primitives)
        self._title.set_text(title)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()


def draw_skeleton_cv2(image: np.ndarray, keypoints: np.ndarray, colours: dict[str, tuple[int, int, int]],
                      thickness: int, visible: np.ndarray | None = None, antialias: bool = True) -> None:
    """Draw an H3.6M-17 stick figure into `image` in place with OpenCV: bones coloured by the side of their child
    joint, then the joints. `colours` maps 'left' / 'right' / 'centre' to colours in the image's channel order;
    `visible` (17,) bool hides joints (and their bones)."""
    import cv2

    pts = np.round(np.asarray(keypoints, np.float64)).astype(int)
    shown = np.ones(NUM_JOINTS, bool) if visible is None else np.asarray(visible, bool)
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    for child, parent in BONES:
        if shown[child] and shown[parent]:
            cv2.line(image, tuple(map(int, pts[parent])), tuple(map(int, pts[child])), colours[joint_side(child)],
                     thickness, line_type)
    for j in np.flatnonzero(shown):
        cv2.circle(image, tuple(map(int, pts[j])), thickness + 2, colours[joint_side(int(j))], -1, line_type)


def draw_persons_cv2(rgb: np.ndarray, persons: Sequence[PersonResult], min_confidence: float = 0.2) -> np.ndarray:
    """A copy of an RGB image with each person's 2D skeleton, box and id drawn (the node's debug image)."""
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    thickness = max(1, round(max(out.shape[:2]) / 300))
    for person in persons:
        colours = {side: tuple(int(v * 255) for v in c) for side, c in person_colours(person.person_id).items()}
        kp = np.asarray(person.keypoints2d, np.float64)
        if not np.all(np.isfinite(kp)):
            continue
        draw_skeleton_cv2(out, kp, colours, thickness, visible=np.asarray(person.confidences) >= min_confidence)
        x0, y0, x1, y1 = (int(round(v)) for v in np.asarray(person.box, np.float64))
        cv2.rectangle(out, (x0, y0), (x1, y1), colours["centre"], 1)
        cv2.putText(out, f"id {person.person_id}", (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    colours["centre"], 1, cv2.LINE_AA)
    return out


def contact_sheet(panels: Sequence[np.ndarray], columns: int = 1, gap: int = 4) -> np.ndarray:
    """Tile equally sized (H, W, 3) panels in a grid with white gaps."""
    if not panels:
        raise ValueError("contact_sheet needs at least one panel")
    h, w = panels[0].shape[:2]
    if any(p.shape != panels[0].shape for p in panels):
        raise ValueError(f"all panels must have the shape {panels[0].shape}, got {[p.shape for p in panels]}")
    rows = -(-len(panels) // columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        sheet[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = panel
    return sheet


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as PNG, atomically."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", optimize=True)
    return Path(path)


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 8.0, scale: float = 1.0) -> Path:
    """Write frames (H, W, 3) uint8 as a looping GIF at `fps`, optionally downscaled, atomically."""
    from PIL import Image

    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    if scale != 1.0:
        size = (max(1, round(images[0].width * scale)), max(1, round(images[0].height * scale)))
        images = [im.resize(size, Image.Resampling.LANCZOS) for im in images]
    # One shared palette keeps colours steady between frames and the file small.
    palette = images[len(images) // 2].quantize(colors=192, method=Image.Quantize.FASTOCTREE)
    images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, round(1000.0 / fps)), optimize=False)
    return Path(path)

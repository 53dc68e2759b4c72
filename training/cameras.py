"""Pinhole cameras with lens distortion, and the public Human3.6M camera calibration.

The Human3.6M numbers below are the published calibration of the dataset's four cameras (intrinsics shared by
all subjects, extrinsics per subject); they are facts of the dataset. Conventions:

- ``orientation`` is a unit quaternion (w, x, y, z) rotating camera axes into world axes; ``translation`` is the
  camera centre in world coordinates. World points X map to the camera optical frame (x right, y down,
  z forward) by ``R^T (X - t)``. The world frame of Human3.6M is z-up, in metres here (published in mm).
- Projection: ``u = f * distort(x / z, y / z) + c`` with Brown-Conrady distortion (k1, k2, k3; p1, p2); the
  division by z is `petr_ros.camera.project` (points at z <= 0 are an error, never clipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from petr_ros import kinematics
from petr_ros.camera import Intrinsics, project
from petr_ros.validation import check_points

# The four cameras, in the order the VideoPose3D-format 2D files list them.
H36M_INTRINSICS: tuple[dict, ...] = (
    {
        "id": "54138969",
        "center": (512.54150390625, 515.4514770507812),
        "focal_length": (1145.0494384765625, 1143.7811279296875),
        "radial_distortion": (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
        "tangential_distortion": (-0.0009756988729350269, -0.00142447161488235),
        "res_w": 1000,
        "res_h": 1002,
    },
    {
        "id": "55011271",
        "center": (508.8486328125, 508.0649108886719),
        "focal_length": (1149.6756591796875, 1147.5916748046875),
        "radial_distortion": (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
        "tangential_distortion": (-0.0016190266469493508, -0.0027408944442868233),
        "res_w": 1000,
        "res_h": 1000,
    },
    {
        "id": "58860488",
        "center": (519.8158569335938, 501.40264892578125),
        "focal_length": (1149.1407470703125, 1148.7989501953125),
        "radial_distortion": (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
        "tangential_distortion": (0.0014843869721516967, -0.0007599993259645998),
        "res_w": 1000,
        "res_h": 1000,
    },
    {
        "id": "60457274",
        "center": (514.9682006835938, 501.88201904296875),
        "focal_length": (1145.5113525390625, 1144.77392578125),
        "radial_distortion": (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
        "tangential_distortion": (-0.0005872055771760643, -0.0018133620033040643),
        "res_w": 1000,
        "res_h": 1002,
    },
)

# Per subject, per camera: (orientation quaternion w x y z, camera centre in mm).
H36M_EXTRINSICS: dict[str, tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]] = {
    "S1": (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}

H36M_SUBJECTS: tuple[str, ...] = tuple(H36M_EXTRINSICS)
NUM_H36M_CAMERAS = len(H36M_INTRINSICS)
# Unit focal length, principal point at 0: camera.project gives normalised image coordinates (x / z, y / z).
NORMALISED_IMAGE = Intrinsics(fx=1.0, fy=1.0, cx=0.0, cy=0.0)


def quaternion_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) or (..., 4) unit quaternion (w, x, y, z) -> rotation matrix (..., 3, 3) acting on column vectors.

    Human3.6M publishes w first; the package's quaternions are (x, y, z, w) (design.md): reorder, then the one
    conversion of the kinematics module.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"quaternion must have shape (..., 4), got {q.shape}")
    return kinematics.quaternion_to_matrix(np.roll(q, -1, axis=-1))


@dataclass(frozen=True)
class Camera:
    """A calibrated camera: intrinsics (pixels), distortion, and pose in the world (metres)."""

    focal: tuple[float, float]
    center: tuple[float, float]
    res_w: int
    res_h: int
    radial: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential: tuple[float, float] = (0.0, 0.0)
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # camera axes -> world axes
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # camera centre, world, metres
    id: str = ""

    @property
    def intrinsic_matrix(self) -> np.ndarray:
        """3x3 K of the undistorted pinhole."""
        return np.array([[self.focal[0], 0, self.center[0]], [0, self.focal[1], self.center[1]], [0, 0, 1.0]])

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points (metres) -> camera optical frame (x right, y down, z forward)."""
        points = check_points(points, "points", dims=3, dtype=np.float64)
        return (points - np.asarray(self.translation)) @ np.asarray(self.rotation)

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """Inverse of world_to_camera."""
        points = check_points(points, "points", dims=3, dtype=np.float64)
        return points @ np.asarray(self.rotation).T + np.asarray(self.translation)

    def project(self, points_cam: np.ndarray, distort: bool = True) -> np.ndarray:
        """(..., 3) points in the camera frame -> (..., 2) pixels; ValueError for points at z <= 0.

        The perspective division (and its rule for z <= 0) is the package's one pinhole, `camera.project`, here
        with unit intrinsics (normalised image coordinates); the lens distortion acts on those.
        """
        points_cam = check_points(points_cam, "points_cam", dims=3, dtype=np.float64)
        xy = project(points_cam, NORMALISED_IMAGE)
        if distort:
            x, y = xy[..., 0], xy[..., 1]
            r2 = x * x + y * y
            k1, k2, k3 = self.radial
            p1, p2 = self.tangential
            radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
            xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            xy = np.stack([xd, yd], axis=-1)
        return xy * np.asarray(self.focal) + np.asarray(self.center)

    def project_world(self, points: np.ndarray, distort: bool = True) -> np.ndarray:
        """World points -> pixels."""
        return self.project(self.world_to_camera(points), distort=distort)


def h36m_camera(subject: str, index: int) -> Camera:
    """The published calibration of Human3.6M camera `index` (0-3) for `subject` ('S1', 'S5'...'S11')."""
    if subject not in H36M_EXTRINSICS:
        raise ValueError(f"no Human3.6M calibration for subject {subject!r}; known: {', '.join(H36M_SUBJECTS)}")
    if not 0 <= index < NUM_H36M_CAMERAS:
        raise ValueError(f"Human3.6M camera index must be 0-{NUM_H36M_CAMERAS - 1}, got {index}")
    intr = H36M_INTRINSICS[index]
    quat, centre_mm = H36M_EXTRINSICS[subject][index]
    return Camera(
        focal=tuple(intr["focal_length"]),
        center=tuple(intr["center"]),
        res_w=intr["res_w"],
        res_h=intr["res_h"],
        radial=tuple(intr["radial_distortion"]),
        tangential=tuple(intr["tangential_distortion"]),
        rotation=quaternion_wxyz_to_matrix(np.array(quat)),
        translation=np.array(centre_mm) / 1000.0,
        id=intr["id"],
    )


def h36m_cameras(subject: str) -> list[Camera]:
    """All four calibrated cameras of a subject, in file order."""
    return [h36m_camera(subject, i) for i in range(NUM_H36M_CAMERAS)]


def look_at_camera(
    eye: np.ndarray,
    target: np.ndarray,
    focal: float,
    res_w: int,
    res_h: int,
    up: np.ndarray = (0.0, 0.0, 1.0),
) -> Camera:
    """A distortion-free camera at `eye` looking at `target` (world, metres), image rows along world -up."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("camera eye and target coincide")
    z = forward / norm
    x = np.cross(-np.asarray(up, dtype=np.float64), z)  # image x: to the right of the view direction
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera looks along the up axis: its roll is undefined")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return Camera(
        focal=(float(focal), float(focal)),
        center=(res_w / 2.0, res_h / 2.0),
        res_w=int(res_w),
        res_h=int(res_h),
        rotation=np.stack([x, y, z], axis=1),
        translation=eye,
    )

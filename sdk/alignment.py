"""Five-point face alignment: a least-squares similarity to a reference template.

Conventions (see docs/architecture.md): points are ``(x, y)`` pixels with pixel
centres at integer coordinates (OpenCV's ``warpAffine`` convention). A transform
is a ``(2, 3)`` float64 matrix ``M`` with ``dst = M[:, :2] @ src + M[:, 2]``,
mapping source-image pixels to aligned-crop pixels.

The reference template is the ArcFace 112x112 five-point template, shrunk by
``TemplateSpec.scale`` about the crop centre and moved up by ``TemplateSpec.shift_y``
so that the whole face, contour and chin included, fits the crop (the paper's
Figure 1: "the face is in the centre of the image with the eyes and mouth
horizontal"). The defaults are the single source of this choice.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelm.errors import InputError

#: ArcFace five-point template for a 112x112 crop (left eye, right eye, nose tip,
#: left mouth corner, right mouth corner), in pixels.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class TemplateSpec:
    """How the ArcFace template is placed in a square crop.

    Attributes:
        scale: shrink factor about the crop centre (1.0 = ArcFace's own tight crop,
            which cuts the chin and the contour). 0.70 leaves the full 106-point contour inside with margin for ±15° rotation.
        shift_y: vertical shift as a fraction of the crop size (negative = up), so the chin,
            which lies further below the mouth than the brows lie above the eyes, stays in.
    """

    scale: float = 0.70
    shift_y: float = -0.12


DEFAULT_TEMPLATE = TemplateSpec()


def reference_template(size: int, spec: TemplateSpec = DEFAULT_TEMPLATE) -> np.ndarray:
    """Five-point reference template for a ``size`` x ``size`` crop.

    Returns:
        (5, 2) float64 pixel coordinates, ArcFace order.
    """
    if int(size) <= 0:
        raise InputError(f"template size must be a positive number of pixels, got {size}")
    # Pixel centres sit at integers, so a crop of S pixels spans [-0.5, S - 0.5]:
    # crop units u = (x + 0.5) / S - 0.5 are centred and size-independent.
    unit = (ARCFACE_TEMPLATE_112 + 0.5) / 112.0 - 0.5
    unit = unit * spec.scale + np.array([0.0, spec.shift_y])
    return (unit + 0.5) * float(size) - 0.5


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"{name} must have shape (K, 2), got {pts.shape}")
    if pts.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 points for a similarity transform, got {pts.shape[0]}")
    if not np.all(np.isfinite(pts)):
        raise InputError(f"{name} contains NaN or Inf")
    return pts


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991), without reflection. Equivalent in the least-squares sense to
    ``cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)`` on noiseless data.

    Args:
        src: (K, 2) source points, K >= 2, pixels.
        dst: (K, 2) target points, pixels.
    Returns:
        (2, 3) float64 matrix M with ``dst ≈ M[:, :2] @ src + M[:, 2]``.
    Raises:
        InputError: wrong shapes, NaN/Inf, fewer than 2 points, or coincident source points.
    """
    s = _check_points(src, "source points")
    d = _check_points(dst, "template points")
    if s.shape != d.shape:
        raise InputError(f"source points {s.shape} and template points {d.shape} differ in shape")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = (sc**2).sum() / len(s)
    if var_s < 1e-12:
        raise InputError("source points coincide (zero spread): cannot estimate an alignment")
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sig) @ fix) / var_s
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def estimate_alignment(five_points: np.ndarray, size: int, spec: TemplateSpec = DEFAULT_TEMPLATE) -> np.ndarray:
    """Similarity from detector/ground-truth five points to the reference template of a ``size`` crop.

    Args:
        five_points: (5, 2) pixels in the source image, ArcFace order.
    Returns:
        (2, 3) float64 source -> crop transform.
    """
    pts = np.asarray(five_points, dtype=np.float64)
    if pts.shape != (5, 2):
        raise InputError(f"five_points must have shape (5, 2), got {pts.shape}")
    return umeyama(pts, reference_template(size, spec))


def estimate_alignment_batch(five_points: np.ndarray, size: int, spec: TemplateSpec = DEFAULT_TEMPLATE) -> np.ndarray:
    """Batched :func:`estimate_alignment`: (N, 5, 2) -> (N, 2, 3)."""
    pts = np.asarray(five_points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (5, 2):
        raise InputError(f"five_points must have shape (N, 5, 2), got {pts.shape}")
    return np.stack([estimate_alignment(p, size, spec) for p in pts]) if len(pts) else np.zeros((0, 2, 3))


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) or (N, 2, 3) affine transform."""
    a = np.asarray(m, dtype=np.float64)
    if a.shape[-2:] != (2, 3):
        raise InputError(f"affine transform must have shape (..., 2, 3), got {a.shape}")
    lin = a[..., :2]
    det = lin[..., 0, 0] * lin[..., 1, 1] - lin[..., 0, 1] * lin[..., 1, 0]
    if np.any(np.abs(det) < 1e-15) or not np.all(np.isfinite(a)):
        raise InputError("affine transform is singular or not finite; cannot invert")
    inv_lin = np.linalg.inv(lin)
    out = np.empty_like(a)
    out[..., :2] = inv_lin
    out[..., 2] = -np.einsum("...ij,...j->...i", inv_lin, a[..., 2])
    return out


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply an affine transform to points.

    Args:
        points: (K, 2) with m (2, 3), or (N, K, 2) with m (2, 3) or (N, 2, 3).
    Returns:
        float64 array shaped like ``points``.
    """
    pts = np.asarray(points, dtype=np.float64)
    a = np.asarray(m, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise InputError(f"points must have shape (..., 2), got {pts.shape}")
    if a.shape[-2:] != (2, 3):
        raise InputError(f"affine transform must have shape (..., 2, 3), got {a.shape}")
    if a.ndim == 3:
        if pts.ndim != 3 or pts.shape[0] != a.shape[0]:
            raise InputError(f"batched transforms {a.shape} need points (N, K, 2) with the same N, got {pts.shape}")
        return np.einsum("nij,nkj->nki", a[:, :, :2], pts) + a[:, None, :, 2]
    return pts @ a[:, :2].T + a[:, 2]


def warp_face(image: np.ndarray, m: np.ndarray, size: int, border_value: int = 0) -> np.ndarray:
    """Warp an image into the ``size`` x ``size`` aligned crop.

    Args:
        image: (H, W, 3) or (H, W) array (any dtype OpenCV accepts).
        m: (2, 3) source -> crop transform.
    Returns:
        (size, size, C) array of the image's dtype; bilinear, constant border.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"image must be (H, W) or (H, W, C) and non-empty, got {img.shape}")
    a = np.asarray(m, dtype=np.float64)
    if a.shape != (2, 3) or not np.all(np.isfinite(a)):
        raise InputError(f"transform must be a finite (2, 3) matrix, got shape {a.shape}")
    return cv2.warpAffine(
        img, a, (int(size), int(size)), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border_value,
    )


def warp_faces(images: list[np.ndarray] | np.ndarray, ms: np.ndarray, size: int) -> np.ndarray:
    """Batched :func:`warp_face`: N images and (N, 2, 3) transforms -> (N, size, size, C)."""
    ms = np.asarray(ms, dtype=np.float64)
    if len(images) != len(ms):
        raise InputError(f"{len(images)} images but {len(ms)} transforms")
    return np.stack([warp_face(img, m, size) for img, m in zip(images, ms)])


#: Smallest distance between the two eye points (pixels of the source image) that makes a face.
MIN_EYE_DISTANCE_PX = 4.0
#: Smallest share of the aligned crop that must come from inside the image. A face cut by the
#: image border (the app kit's golden set has one with 45% of its crop inside) is still a face;
#: points far outside the image, a x1e6 spread or a 1x1 image give ~0%.
MIN_CROP_INSIDE = 0.25


def check_face_geometry(five_points: np.ndarray, image_shape: tuple[int, ...], size: int,
                        spec: TemplateSpec = DEFAULT_TEMPLATE) -> np.ndarray:
    """Refuse five points that cannot be a face in this image; return the image -> crop transform.

    Rules (documented thresholds):
    - the eye points (rows 0 and 1) are at least :data:`MIN_EYE_DISTANCE_PX` apart;
    - at least :data:`MIN_CROP_INSIDE` (a quarter) of the ``size`` x ``size`` aligned crop maps
      inside the image (points far outside it, a x1e6 spread or a 1x1 image fail this).

    Args:
        five_points: (5, 2) pixels in the image, ArcFace order.
        image_shape: (H, W, ...) of the image.
        size: model input side in pixels.
    Raises:
        InputError: naming the rule that failed and the measured value.
    """
    pts = _check_points(five_points, "five_points")
    if pts.shape != (5, 2):
        raise InputError(f"five_points must have shape (5, 2), got {pts.shape}")
    eye = float(np.hypot(*(pts[1] - pts[0])))
    if not eye >= MIN_EYE_DISTANCE_PX:
        raise InputError(f"five points with the eyes {eye:.3g} px apart are not a face "
                         f"(at least {MIN_EYE_DISTANCE_PX:g} px)")
    m = estimate_alignment(pts, size, spec)
    h, w = int(image_shape[0]), int(image_shape[1])
    grid = (np.arange(16) + 0.5) * (size / 16.0) - 0.5
    gx, gy = np.meshgrid(grid, grid)
    src = transform_points(np.stack([gx.ravel(), gy.ravel()], axis=1), invert_affine(m))
    inside = float(np.mean((src[:, 0] >= -0.5) & (src[:, 0] <= w - 0.5) & (src[:, 1] >= -0.5) & (src[:, 1] <= h - 0.5)))
    if inside < MIN_CROP_INSIDE:
        raise InputError(f"the face the five points describe lies mostly outside the {w}x{h} image "
                         f"({100 * inside:.0f}% of its crop inside, at least {100 * MIN_CROP_INSIDE:.0f}% needed)")
    return m

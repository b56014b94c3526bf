import cv2
import numpy as np
import pytest

from facelm.alignment import (
    ARCFACE_TEMPLATE_112, TemplateSpec, estimate_alignment, estimate_alignment_batch, invert_affine,
    reference_template, transform_points, umeyama, warp_face, warp_faces,
)
from facelm.errors import InputError


def _similarity(scale, angle_deg, tx, ty):
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, [[tx], [ty]]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0, 0, 0), (0.37, 23.0, -14.2, 80.5), (2.9, -170.0, 300.1, -5.5)])
def test_umeyama_recovers_known_similarity(scale, angle, tx, ty):
    src = np.random.default_rng(0).uniform(0, 300, (7, 2))
    m_true = _similarity(scale, angle, tx, ty)
    dst = transform_points(src, m_true)
    np.testing.assert_allclose(umeyama(src, dst), m_true, atol=1e-6)


def test_umeyama_matches_opencv_least_squares():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (5, 2))
    dst = transform_points(src, _similarity(0.8, 12, 10, 20)) + rng.normal(0, 1.5, (5, 2))
    ours = umeyama(src, dst)
    cv, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    # Both minimise the same least-squares error on inliers; LMEDS on 5 points keeps all of them
    # only when the noise is small, so compare the residuals rather than the matrices.
    res_ours = np.linalg.norm(transform_points(src, ours) - dst, axis=1).sum()
    res_cv = np.linalg.norm(transform_points(src, cv) - dst, axis=1).sum()
    assert res_ours <= res_cv + 1e-6
    # On noiseless data the two agree exactly.
    dst0 = transform_points(src, _similarity(0.8, 12, 10, 20))
    cv0, _ = cv2.estimateAffinePartial2D(src, dst0, method=cv2.LMEDS)
    np.testing.assert_allclose(umeyama(src, dst0), cv0, atol=1e-6)


def test_umeyama_never_reflects():
    src = np.array([[0, 0], [10, 0], [0, 10.0]])
    dst = src * [-1, 1]  # a mirror: the best similarity without reflection is not a mirror
    m = umeyama(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


@pytest.mark.parametrize(
    "src,msg",
    [
        (np.zeros((5, 2)), "coincide"),
        (np.array([[1.0, np.nan], [2, 3], [4, 5], [6, 7], [8, 9]]), "NaN"),
        (np.array([[1.0, 2.0]]), "at least 2"),
        (np.zeros((5, 3)), "shape"),
    ],
)
def test_degenerate_input_raises_clear_error(src, msg):
    with pytest.raises(InputError, match=msg):
        umeyama(src, np.zeros((len(src), 2)) + np.arange(len(src))[:, None])


def test_estimate_alignment_maps_five_points_onto_template():
    m_true = _similarity(1.7, 31, 40, -12)
    tmpl = reference_template(192)
    five = transform_points(tmpl, invert_affine(m_true))
    m = estimate_alignment(five, 192)
    np.testing.assert_allclose(transform_points(five, m), tmpl, atol=1e-6)
    with pytest.raises(InputError, match=r"\(5, 2\)"):
        estimate_alignment(five[:4], 192)


def test_template_scales_with_pixel_centres():
    # With scale 1 and no shift, 112 reproduces ArcFace exactly, and any size is a pure rescale
    # about the crop centre (S-1)/2 under the pixel-centre convention.
    spec = TemplateSpec(scale=1.0, shift_y=0.0)
    np.testing.assert_allclose(reference_template(112, spec), ARCFACE_TEMPLATE_112, atol=1e-9)
    t224 = reference_template(224, spec)
    np.testing.assert_allclose((t224 + 0.5) / 224, (ARCFACE_TEMPLATE_112 + 0.5) / 112, atol=1e-12)
    t = reference_template(192)
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]
    assert np.all((t > 0) & (t < 192))


def test_inverse_and_batched_mapping():
    rng = np.random.default_rng(5)
    ms = np.stack([_similarity(rng.uniform(0.5, 2), rng.uniform(-90, 90), *rng.uniform(-50, 50, 2)) for _ in range(4)])
    pts = rng.uniform(0, 100, (4, 10, 2))
    out = transform_points(pts, ms)
    for i in range(4):
        np.testing.assert_allclose(out[i], transform_points(pts[i], ms[i]), atol=1e-12)
    np.testing.assert_allclose(transform_points(out, invert_affine(ms)), pts, atol=1e-9)
    five = rng.uniform(50, 150, (3, 5, 2))
    mb = estimate_alignment_batch(five, 96)
    for i in range(3):
        np.testing.assert_allclose(mb[i], estimate_alignment(five[i], 96), atol=1e-12)
    with pytest.raises(InputError, match="singular"):
        invert_affine(np.zeros((2, 3)))


def test_warp_moves_a_dot_where_the_transform_says():
    # A smooth blob (sigma 5 px) centred at a sub-pixel point; its intensity centroid after the
    # warp must land where transform_points says (OpenCV interpolates in 1/32 px steps).
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    img = np.exp(-((xx - 200.3) ** 2 + (yy - 90.7) ** 2) / (2 * 5.0**2)).astype(np.float32)
    m = _similarity(1.3, 20, 0, 0)
    m[:, 2] = np.array([60.0, 70.0]) - m[:, :2] @ [200.3, 90.7]  # blob lands inside the crop
    crop = warp_face(np.dstack([img] * 3), m, 128)[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:128, 0:128]
    centre = np.array([(xs * crop).sum() / crop.sum(), (ys * crop).sum() / crop.sum()])
    np.testing.assert_allclose(centre, transform_points(np.array([200.3, 90.7]), m), atol=0.02)
    img3 = np.zeros((50, 60, 3), np.uint8)
    assert warp_faces([img3, img3], np.stack([m, m]), 64).shape == (2, 64, 64, 3)
    with pytest.raises(InputError):
        warp_face(np.zeros((0, 5, 3), np.uint8), m, 64)


@pytest.mark.parametrize("case, match", [
    ("outside", "mostly outside"), ("collapsed", "eyes"), ("spread", "mostly outside"), ("tiny_image", "outside"),
])
def test_impossible_five_points_are_refused(case, match):
    from facelm.alignment import check_face_geometry

    five = np.array([[80.0, 90], [120, 90], [100, 115], [84, 138], [116, 138]])
    shape = (200, 200, 3)
    if case == "outside":
        five = five + 10_000
    elif case == "collapsed":
        five = np.full((5, 2), 100.0) + np.arange(5)[:, None] * 1e-8
    elif case == "spread":
        five = (five - 100) * 1e6 + 100
    else:
        shape = (1, 1, 3)
    with pytest.raises(InputError, match=match):
        check_face_geometry(five, shape, 96)
    if case != "tiny_image":
        assert check_face_geometry(np.array([[80.0, 90], [120, 90], [100, 115], [84, 138], [116, 138]]),
                                   (200, 200, 3), 96).shape == (2, 3)

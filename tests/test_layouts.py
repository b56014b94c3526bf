import dataclasses
import itertools

import numpy as np
import pytest

from facelm.data import synth
from facelm.errors import ConfigError, InputError
from facelm.layouts import IBUG68, JD106, LAYOUTS, WFLW98, flip_landmarks, get_layout, layout_for_points


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_permutation_is_an_involution_and_a_permutation(layout):
    perm = layout.flip_permutation
    assert perm.shape == (layout.num_points,)
    assert sorted(perm.tolist()) == list(range(layout.num_points))
    np.testing.assert_array_equal(perm[perm], np.arange(layout.num_points))


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_each_point_in_at_most_one_pair_and_regions_cover_all(layout):
    flat = [i for p in layout.flip_pairs for i in p]
    assert len(flat) == len(set(flat))
    covered = sorted(i for r in layout.regions.values() for i in r)
    assert covered == list(range(layout.num_points))


def _symmetric_shape(layout, width=200.0, seed=0):
    """A shape that is mirror-symmetric about x = (width-1)/2 under the layout's pairs."""
    rng = np.random.default_rng(seed)
    cx = (width - 1) / 2
    pts = np.zeros((layout.num_points, 2))
    paired = set()
    for i, j in layout.flip_pairs:
        x, y = rng.uniform(5, 60), rng.uniform(0, 200)
        pts[i] = (cx - x, y)
        pts[j] = (cx + x, y)
        paired |= {i, j}
    for k in range(layout.num_points):
        if k not in paired:
            pts[k] = (cx, rng.uniform(0, 200))
    return pts


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_landmarks_mirrors_about_the_centre_and_relabels_by_the_pairs(layout):
    """The mechanics of flip_landmarks (x -> W - 1 - x, then the pairs' relabelling); whether the
    pairs themselves are right is checked on rendered faces below (JD-106)."""
    pts = _symmetric_shape(layout)
    np.testing.assert_allclose(flip_landmarks(pts, 200, layout), pts, atol=1e-12)


# ---------------------------------------------------------------- JD-106 pairs on rendered faces

FACE_SIZE = 256
#: Largest mirror error (px) allowed on a symmetric rendered face; the rendering is exact, so
#: this is float rounding. The closest wrong partner is several pixels away (asserted below).
MIRROR_TOL_PX = 1e-6


def _frontal_face(seed: int) -> np.ndarray:
    """(106, 2) pixel landmarks of a synthetic frontal face (yaw = pitch = roll = 0).

    Identity and expression are drawn from ``seed``; the asymmetric parts (identity asymmetry,
    horizontal gaze, one-sided blink) are zeroed and the mouth is opened so that the inner lips
    part. The face model mirrors its image-left half through its own twin table, written
    independently of ``JD106.flip_pairs``, so the pairs are checked against geometry.
    """
    p = synth.sample_params(np.random.default_rng([seed, 1]), synth.SynthConfig())
    p = dataclasses.replace(p, asym=0.0, gaze=(0.0, p.gaze[1]), blink_left=0.0, blink_right=0.0,
                            mouth_open=max(p.mouth_open, 0.1))
    pose = synth.Pose(yaw=0.0, pitch=0.0, roll=0.0, distance=8.0, width=0.6, offset=(3.0, -2.0))
    lm, _, _ = synth.place_face(p, pose, FACE_SIZE)
    return lm


def _mirror_errors(pairs, lm: np.ndarray) -> np.ndarray:
    """(106,) px: for each point k, distance of its pair partner from k's mirror image about the
    face's vertical axis; a point in no pair is compared with its own mirror (its distance from
    the axis, doubled). The axis is the middle of the landmarks' horizontal extent."""
    partner = np.arange(len(lm))
    for i, j in pairs:
        partner[i], partner[j] = j, i
    axis = 0.5 * (lm[:, 0].min() + lm[:, 0].max())
    mirrored = np.stack([2 * axis - lm[:, 0], lm[:, 1]], axis=1)
    return np.linalg.norm(mirrored - lm[partner], axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_jd106_pairs_match_a_rendered_frontal_face(seed):
    lm = _frontal_face(seed)
    err = _mirror_errors(JD106.flip_pairs, lm)
    assert err.max() < MIRROR_TOL_PX, {int(k): float(err[k]) for k in np.flatnonzero(err >= MIRROR_TOL_PX)}
    # Mirroring the face through flip_landmarks gives the face back (x -> W - 1 - x about its centre).
    centred = lm + [(FACE_SIZE - 1) / 2 - 0.5 * (lm[:, 0].min() + lm[:, 0].max()), 0.0]
    np.testing.assert_allclose(flip_landmarks(centred, FACE_SIZE, JD106), centred, atol=MIRROR_TOL_PX)


def _swapped(pairs, a: int, b: int) -> tuple[tuple[int, int], ...]:
    """``pairs`` with the partners of pairs ``a`` and ``b`` exchanged: (i, j), (k, l) -> (i, l), (k, j)."""
    out = list(pairs)
    (i, j), (k, l) = out[a], out[b]
    out[a], out[b] = (i, l), (k, j)
    return tuple(out)


def test_every_swapped_jd106_pair_is_caught_by_the_rendered_face():
    """The check above can fail: exchanging the partners of any two pairs breaks it by pixels.

    Pairs (74, 83) and (104, 105) are the exception: 104 and 74 are the same point (the pupil).
    """
    lm = _frontal_face(0)
    pairs = JD106.flip_pairs
    same = {frozenset({74, 83}), frozenset({104, 105})}
    worst = np.inf
    for a, b in itertools.combinations(range(len(pairs)), 2):
        if {frozenset(pairs[a]), frozenset(pairs[b])} == same:
            continue
        worst = min(worst, _mirror_errors(_swapped(pairs, a, b), lm).max())
    assert worst > 1.0, worst  # px on a 256 px face: far above MIRROR_TOL_PX
    # A self-paired point (the nose tip) paired with a neighbour is caught too.
    bad = tuple(p for p in pairs if 59 not in p) + ((54, 59),)
    assert _mirror_errors(bad, lm).max() > 1.0


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_twice_is_identity_and_input_untouched(layout):
    pts = np.random.default_rng(1).uniform(0, 100, (3, layout.num_points, 2))
    before = pts.copy()
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(pts, 100, layout), 100, layout), pts, atol=1e-12)
    np.testing.assert_array_equal(pts, before)


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_by_permutation_equals_flip_by_layout(layout):
    """The codec's flip test passes a bare permutation; it is the same mirror as the layout's."""
    pts = np.random.default_rng(4).uniform(0, 64, (2, layout.num_points, 2)).astype(np.float32)
    np.testing.assert_array_equal(flip_landmarks(pts, 64, layout.flip_permutation), flip_landmarks(pts, 64, layout))
    assert flip_landmarks(pts[0], 64, layout)[0, 0] == pytest.approx(63 - pts[0, layout.flip_permutation[0], 0])


def test_flip_rejects_points_that_do_not_fit():
    pts = np.zeros((106, 2))
    with pytest.raises(InputError, match="permutation of range"):
        flip_landmarks(pts, 10, JD106.flip_permutation[:-1])
    with pytest.raises(InputError, match="permutation of range"):
        flip_landmarks(pts, 10, np.zeros(106, int))
    with pytest.raises(InputError, match="has 98 points"):
        flip_landmarks(pts, 10, "wflw98")
    with pytest.raises(InputError, match=r"\(\.\.\., K, 2\)"):
        flip_landmarks(np.zeros((106, 3)), 10, JD106)


def test_flip_swaps_left_and_right_semantics_jd106():
    # The image-left eye centre (104) becomes the image-right one (105) after a mirror.
    pts = _frontal_face(1)
    pts[104] += (-3, 1)  # break symmetry on one pupil only
    flipped = flip_landmarks(pts, FACE_SIZE, JD106)
    assert flipped[105, 0] == pytest.approx(FACE_SIZE - 1 - pts[104, 0])
    assert flipped[104, 0] < flipped[105, 0]
    assert flipped[105, 1] == pytest.approx(pts[104, 1])


def test_five_points_and_groups():
    pts = np.arange(68 * 2, dtype=float).reshape(68, 2)
    five = IBUG68.five_points(pts)
    np.testing.assert_allclose(five[0], pts[36:42].mean(axis=0))
    np.testing.assert_allclose(five[2], pts[30])
    jd = np.random.default_rng(0).normal(size=(4, 106, 2))
    np.testing.assert_allclose(JD106.five_points(jd), jd[:, [104, 105, 54, 84, 90]])
    with pytest.raises(InputError, match="106"):
        JD106.five_points(np.zeros((98, 2)))


def test_five_points_are_left_to_right_on_symmetric_face():
    for layout in LAYOUTS.values():
        five = layout.five_points(_symmetric_shape(layout))
        assert five[0, 0] < five[1, 0] or np.isclose(five[0, 0], five[1, 0])


def test_normalizers():
    gt = np.zeros((1, 98, 2))
    gt[0, 60] = (10, 10)
    gt[0, 72] = (40, 50)
    assert WFLW98.normalizer(gt)[0] == pytest.approx(50.0)
    jd = np.zeros((1, 106, 2))
    jd[0, 0] = (0, 0)
    jd[0, 1] = (40, 90)
    assert JD106.normalizer(jd)[0] == pytest.approx(60.0)
    assert JD106.normalizer(jd, bbox=np.array([[0, 0, 25, 100]]))[0] == pytest.approx(50.0)


def test_lookup():
    assert get_layout("JD-106") is JD106
    assert get_layout("300w") is IBUG68
    assert layout_for_points(98) is WFLW98
    with pytest.raises(ConfigError, match="unknown landmark layout"):
        get_layout("cofw29")
    with pytest.raises(InputError):
        layout_for_points(29)

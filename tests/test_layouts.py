import numpy as np
import pytest

from sdk.errors import ConfigError, InputError
from sdk.layouts import IBUG68, JD106, LAYOUTS, WFLW98, flip_landmarks, get_layout, layout_for_points


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
def test_mirroring_a_symmetric_shape_gives_it_back(layout):
    pts = _symmetric_shape(layout)
    np.testing.assert_allclose(flip_landmarks(pts, 200, layout), pts, atol=1e-12)


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_twice_is_identity_and_input_untouched(layout):
    pts = np.random.default_rng(1).uniform(0, 100, (3, layout.num_points, 2))
    before = pts.copy()
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(pts, 100, layout), 100, layout), pts, atol=1e-12)
    np.testing.assert_array_equal(pts, before)


def test_flip_swaps_left_and_right_semantics_jd106():
    # The image-left eye centre (104) becomes the image-right one (105) after a mirror.
    pts = _symmetric_shape(JD106)
    pts[104] += (-3, 1)  # break symmetry on one pupil only
    flipped = flip_landmarks(pts, 200, JD106)
    assert flipped[105, 0] == pytest.approx(199 - pts[104, 0])
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

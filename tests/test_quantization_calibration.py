"""Named calibration sources (facelm.quantization.calibration): realistic, real, mixed.

The evaluation set stays the standard synthetic one whatever calibrates; real calibration crops
come from the calibration photos only, aligned as the runtime aligns them, then augmented.
"""
import numpy as np
import pytest

from facelm.errors import InputError
from facelm.quantization import calibration as cal


def _real_ready() -> bool:
    from facelm.data import real_faces
    from facelm.detect.multiscale import installed

    return installed() and set(cal.REAL_CALIB_PHOTOS) <= set(real_faces.available())


needs_real = pytest.mark.skipif(not _real_ready(), reason="real photos or the detector models not installed")


@pytest.fixture(scope="module")
def real_set():
    if not _real_ready():
        pytest.skip("real photos or the detector models not installed")
    return cal.real_photo_faces(14, 64, seed=5)


def test_named_sources_keep_the_standard_synthetic_evaluation_set():
    _, ref = cal.build_sets("synthetic", 64, "jd106", num_calib=2, num_eval=3)
    calib, ev = cal.build_sets("realistic", 64, "jd106", num_calib=4, num_eval=3)
    assert np.array_equal(ev.crops, ref.crops) and np.array_equal(ev.landmarks, ref.landmarks)
    assert ev.names == [f"synthetic:{cal.EVAL_SEED}:{i}" for i in range(3)]
    assert calib.crops.shape == (4, 64, 64, 3) and calib.landmarks.shape == (4, 106, 2)
    assert calib.names[0].startswith(f"realistic:{cal.CALIB_SEED}:")


def test_realistic_faces_differ_from_the_default_renderer():
    a = cal.realistic_faces(3, 64, seed=7)
    b = cal.synthetic_faces(3, 64, seed=7)
    assert not np.array_equal(a.crops, b.crops)
    assert np.array_equal(a.crops, cal.realistic_faces(3, 64, seed=7).crops)  # deterministic in the seed


def test_named_source_refuses_another_layout_and_unknown_names():
    with pytest.raises(InputError, match=r"JD-106 \(the evaluation set of calibration source mixed\); .* ibug68"):
        cal.build_sets("mixed", 64, "ibug68", num_calib=3, num_eval=2)
    with pytest.raises(InputError, match="unknown calibration source"):
        cal.calibration_faces("photos", 3, 64)


def test_calibration_never_uses_the_real_clip_photos():
    from facelm.data.real_clips import EYES

    assert set(EYES) <= set(cal.REAL_EVAL_PHOTOS)
    assert not set(cal.REAL_CALIB_PHOTOS) & set(cal.REAL_EVAL_PHOTOS)


@needs_real
def test_real_crops_start_with_each_face_as_the_runtime_aligns_it(real_set):
    from facelm.alignment import warp_face

    faces = cal.detect_real_faces(cal.REAL_CALIB_PHOTOS)
    assert len(faces) == 10  # one face per photo, six in the group photo
    assert real_set.landmarks is None and len(real_set) == 14
    for i, (name, img, det) in enumerate(faces):
        assert real_set.names[i] == f"real:5:{name}:{i}"
        assert np.array_equal(real_set.crops[i], warp_face(img, det.alignment(64), 64))
    photos = {n.split(":")[2].split("#")[0] for n in real_set.names}
    assert photos == set(cal.REAL_CALIB_PHOTOS)


@needs_real
def test_real_crops_beyond_the_faces_are_augmented_and_deterministic(real_set):
    again = cal.real_photo_faces(14, 64, seed=5)
    other = cal.real_photo_faces(14, 64, seed=6)
    assert np.array_equal(again.crops, real_set.crops)
    assert np.array_equal(other.crops[:10], real_set.crops[:10])  # the unaugmented faces
    for i in range(10, 14):  # face i - 10 again, jittered: not its plain crop, not seed 6's
        assert not np.array_equal(real_set.crops[i], real_set.crops[i - 10])
        assert not np.array_equal(real_set.crops[i], other.crops[i])


@needs_real
def test_mixed_is_thirds_of_the_three_sources():
    m = cal.mixed_faces(8, 64, seed=3)
    kinds = [n.split(":")[0] for n in m.names]
    assert kinds == ["synthetic"] * 3 + ["realistic"] * 3 + ["real"] * 2
    assert m.landmarks is None and m.crops.shape == (8, 64, 64, 3)
    assert np.array_equal(m.crops[:3], cal.synthetic_faces(3, 64, 3).crops)
    calib, _ = cal.build_sets("real", 64, "jd106", num_calib=3, num_eval=2)
    assert calib.landmarks is None and calib.names[0].startswith(f"real:{cal.CALIB_SEED}:")


def test_photometric_grey_blur_noise_and_identity():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    off = cal.CropAugment(color_jitter=0.0, noise_sigma=(0.0, 0.0), blur=0.0, grayscale=0.0)
    assert np.array_equal(cal._photometric(crop, rng, off), crop)
    grey = cal._photometric(crop, rng, cal.CropAugment(color_jitter=0.0, noise_sigma=(0.0, 0.0), blur=0.0,
                                                       grayscale=1.0))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    expect = np.clip(np.rint(crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)), 0, 255)
    assert np.abs(grey[..., 0].astype(int) - expect).max() <= 1
    noisy = cal._photometric(np.full((64, 64, 3), 128, np.uint8), rng,
                             cal.CropAugment(color_jitter=0.0, noise_sigma=(5.0, 5.0), blur=0.0, grayscale=0.0))
    assert 4.5 < noisy.astype(float).std() < 5.5


def test_jitter_transform_is_a_bounded_similarity_about_the_centre():
    rng = np.random.default_rng(1)
    assert np.allclose(cal._jitter_transform(rng, cal.CropAugment(rotation_deg=0.0, scale=0.0, shift=0.0, flip=0.0),
                                             64), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    aug = cal.CropAugment(flip=0.0)
    for _ in range(20):
        m = cal._jitter_transform(rng, aug, 64)
        a, b = m[0, 0], m[1, 0]
        assert np.isclose(m[0, 1], -b) and np.isclose(m[1, 1], a)  # rotation + uniform scale
        assert abs(np.hypot(a, b) - 1) <= aug.scale + 1e-12
        assert abs(np.degrees(np.arctan2(b, a))) <= aug.rotation_deg + 1e-9
        c = np.array([31.5, 31.5])
        assert np.all(np.abs(m[:, :2] @ c + m[:, 2] - c) <= aug.shift * 64 + 1e-9)  # the centre moves by the shift only
    mirrored = cal._jitter_transform(rng, cal.CropAugment(rotation_deg=0.0, scale=0.0, shift=0.0, flip=1.0), 64)
    assert np.allclose(mirrored, [[-1, 0, 63], [0, 1, 0]], atol=1e-12)

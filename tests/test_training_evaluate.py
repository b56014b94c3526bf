"""facelm.training.evaluate: the flip test from two forward passes, scored in image pixels."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelm.alignment import invert_affine, transform_points  # noqa: E402
from facelm.codec import DecodeConfig  # noqa: E402
from facelm.data import synth  # noqa: E402
from facelm.data.dataset import LandmarkDataset, TargetSpec  # noqa: E402
from facelm.data.sources import load_records  # noqa: E402
from facelm.metrics import nme  # noqa: E402
from facelm.model import build_model, load_config  # noqa: E402
from facelm.postprocess import output_to_landmarks  # noqa: E402
from facelm.training.evaluate import evaluate, mean_shape_nme, predict_input_points, torch_model_spec  # noqa: E402

#: The rewrite must give the same NMEs as the three-pass version (float rounding only).
SAME_NME = 1e-12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "faces"
    synth.write_jd_folder(root, 6, seed=5, size=112, progress=False)
    records, layout = load_records(root)
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # BN statistics away from identity, so predictions vary per face
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model, LandmarkDataset(records, layout, TargetSpec(cfg.input_size, cfg.heatmap_size))


def _three_pass_reference(model, dataset, batch_size):
    """The former evaluate(): plain pass, then a plain + mirrored pass for the flip test, by hand."""
    perm = dataset.layout.flip_permutation
    plain, flipped = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([torch.as_tensor(b["image"]) for b in items])
        inv = invert_affine(np.stack([np.asarray(b["transform"]) for b in items]))
        gt, box = np.stack([np.asarray(b["gt"]) for b in items]), np.stack([np.asarray(b["bbox"]) for b in items])
        size, hm = int(x.shape[-1]), dataset.spec.heatmap_size
        spec, out = torch_model_spec(len(perm), size, hm)
        with torch.no_grad():
            pts = output_to_landmarks(model(x).float().numpy(), out, spec, DecodeConfig()).crop
            again = output_to_landmarks(model(x).float().numpy(), out, spec, DecodeConfig()).crop
            mirrored = output_to_landmarks(model(torch.flip(x, dims=[3])).float().numpy(), out, spec,
                                           DecodeConfig()).crop
        mirrored = mirrored[:, perm, :]
        mirrored[..., 0] = (size - 1) - mirrored[..., 0]
        plain.append(nme(transform_points(pts, inv), gt, dataset.layout, box))
        flipped.append(nme(transform_points(0.5 * (again + mirrored), inv), gt, dataset.layout, box))
    return np.concatenate(plain), np.concatenate(flipped)


class _Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.train(inner.training)  # evaluate() restores this mode on the wrapped model too

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_evaluate_runs_the_model_twice_per_batch_with_unchanged_results(setup):
    model, ds = setup
    counted = _Counting(model)
    result = evaluate(counted, ds, batch_size=4)
    assert counted.calls == 2 * 2  # 6 faces in batches of 4: two batches, image + mirror each
    ref_plain, ref_flip = _three_pass_reference(model, ds, 4)
    np.testing.assert_allclose(result.nme_plain, ref_plain, rtol=0, atol=SAME_NME)
    np.testing.assert_allclose(result.nme_flip, ref_flip, rtol=0, atol=SAME_NME)
    assert not np.allclose(result.nme_plain, result.nme_flip)  # the flip test did change something


def test_predict_input_points_plain_is_one_pass(setup):
    model, ds = setup
    counted = _Counting(model)
    x = torch.stack([torch.as_tensor(ds[i]["image"]) for i in range(2)])
    pts = predict_input_points(counted, x, ds.layout.flip_permutation, ds.spec.heatmap_size)
    assert counted.calls == 1 and pts.shape == (2, ds.layout.num_points, 2)


def test_mean_shape_nme_matches_mapping_each_face_by_hand(setup):
    _, ds = setup
    mean = np.mean([ds.sample(i)["points"] for i in range(len(ds))], axis=0)
    by_hand = [nme(transform_points(mean, invert_affine(s["transform"]))[None], s["gt"][None], ds.layout,
                   s["bbox"][None])[0] for s in (ds.sample(i) for i in range(len(ds)))]
    np.testing.assert_allclose(mean_shape_nme(ds, ds), by_hand, rtol=0, atol=SAME_NME)

"""Model zoo: configs, backbones, forward passes, PixelShuffle formulations, ONNX export."""
import dataclasses
import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facelm.errors import ConfigError
from facelm.model import ALIASES, ModelConfig, build_model, list_configs, load_config
from facelm.model.backbones import MobileNetV2, ResNetV1b
from facelm.model.heads import PixelShuffle, pixel_shuffle_rank4

ZOO = list_configs(include_aliases=False)


def calibrate_bn(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
    """Set every BN's running statistics from one train-mode pass on random images, so the
    eval-mode model has unit-scale activations (the default statistics let a randomly
    initialised MobileNetV2 shrink them to ~1e-8, which would make output comparisons
    vacuous). Returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the statistics
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0.0, 0.1, generator=g)
    model.train()
    with torch.no_grad():
        model(torch.randn(1, 3, size, size, generator=g))
    return model.eval()


def assert_meaningful(y: np.ndarray) -> None:
    """Outputs must vary over space, or comparing them proves nothing."""
    assert float(y.std(axis=(-1, -2)).mean()) > 1e-3 * float(np.abs(y).max()) > 0


# ---- configs --------------------------------------------------------------------------

def test_zoo_has_every_required_config():
    names = set(list_configs())
    for s in ("ssss", "dsss", "ddss", "dssd", "dsds", "ddds", "sssd", "sdsd", "ssdd", "sddd", "dddd"):
        assert f"mnv2_0.25_{s}256" in names
    for s in ("ssd", "sdd", "sssd", "sdsd"):
        assert f"mnv2_1.0_{s}128" in names
    assert {"baseline", "final", "resnet18_sdd128", "resnet50_sdd128", "tiny", "tiny_track"} <= names


def test_baseline_and_final_are_the_papers():
    b = load_config("baseline")
    assert (b.backbone, b.width, b.strategy, b.filters, b.input_size, b.heatmap_size, b.num_keypoints) == \
        ("mobilenetv2", 0.25, "DDDD", 256, 192, 96, 106)
    f = load_config("mnv2_1.0_sdd128")
    assert (f.backbone, f.width, f.strategy, f.filters, f.input_size, f.heatmap_size, f.stride) == \
        ("mobilenetv2", 1.0, "SDD", 128, 192, 48, 4)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_keeps_its_name_and_equals_target(alias):
    a, t = load_config(alias), load_config(ALIASES[alias])
    assert a.name == alias
    assert dataclasses.replace(a, name=t.name) == t


@pytest.mark.parametrize("name", ZOO)
def test_dict_round_trip(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.stride * cfg.heatmap_size == cfg.input_size


def test_load_from_path(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("backbone: resnet18\nstrategy: SD\nfilters: 64\ninput_size: 128\n")
    cfg = load_config(p)
    assert (cfg.name, cfg.backbone, cfg.heatmap_size, cfg.width) == ("mine", "resnet18", 16, 1.0)
    assert load_config(str(p)) == cfg


def test_yaml_int_width_becomes_float(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("width: 1\n")
    assert isinstance(load_config(p).width, float)


@pytest.mark.parametrize("fields, match", [
    ({"backbone": "vgg"}, "unknown backbone 'vgg'"),
    ({"width": 0.3}, "width 0.3"),
    ({"backbone": "resnet18", "width": 0.5}, "mobilenetv2 only"),
    ({"strategy": "SDX"}, "bad character 'X' at position 2"),
    ({"strategy": "SDD", "filters": 30}, "multiple of 4"),
    ({"input_size": 100}, "multiple of 32"),
    ({"input_size": 64, "strategy": "DDDDDD"}, "128px heatmaps, larger than the 64px input"),
    ({"layout": "wflw98"}, "98 points"),
    ({"layout": "nope"}, "unknown landmark layout"),
    ({"pixel_shuffle": "fast"}, "pixel_shuffle"),
    ({"shuffle_kernel": 2}, "odd"),
    ({"filters": True}, "'filters' must be int"),
    ({"input_size": "192"}, "'input_size' must be int"),
])
def test_invalid_configs(fields, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(name="bad", **fields)


def test_bad_files_and_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown model config 'nope'.*tiny"):
        load_config("nope")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "extra.yaml").write_text("filterz: 3\n")
    with pytest.raises(ConfigError, match="unknown model config keys \\['filterz'\\]"):
        load_config(tmp_path / "extra.yaml")


# ---- backbones (golden parameter counts: the classic ImageNet models minus their classifier)

@pytest.mark.parametrize("make, params, channels", [
    (lambda: MobileNetV2(1.0), 3_504_872 - 1_281_000, 1280),
    (lambda: ResNetV1b("resnet18"), 11_689_512 - 513_000, 512),
    (lambda: ResNetV1b("resnet50"), 25_557_032 - 2_049_000, 2048),
])
def test_backbone_parameter_counts(make, params, channels):
    with torch.device("meta"):
        m = make()
    assert sum(p.numel() for p in m.parameters()) == params
    assert m.out_channels == channels


@pytest.mark.parametrize("width, first, last_block", [(0.25, 8, 80), (0.5, 16, 160), (0.75, 24, 240), (1.0, 32, 320)])
def test_mobilenetv2_widths_truncate_without_rounding(width, first, last_block):
    with torch.device("meta"):
        m = MobileNetV2(width)
        no_last = MobileNetV2(width, last_conv=False)
    assert m.features[0][0].out_channels == first
    assert no_last.out_channels == last_block
    assert m.out_channels == 1280
    assert len(m.features[1].block) == 2  # t=1 block: depthwise + project, no expansion conv


# ---- forward passes -----------------------------------------------------------------

@pytest.mark.parametrize("name", ZOO)
def test_forward_shape(name):
    cfg = load_config(name)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    n = 2 if cfg.input_size <= 96 else 1  # batch 2 only where it is cheap
    x = torch.randn(n, 3, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (n, cfg.num_keypoints, cfg.heatmap_size, cfg.heatmap_size)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_state_dict_load_reproduces_outputs():
    cfg = load_config("tiny")
    torch.manual_seed(1)
    a = calibrate_bn(build_model(cfg), cfg.input_size)
    torch.manual_seed(2)
    b = build_model(cfg).eval()
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
        b.load_state_dict(a.state_dict())
        assert torch.equal(a(x), b(x))


# ---- PixelShuffle formulations ------------------------------------------------------

@pytest.mark.parametrize("shape, r", [((1, 4, 3, 3), 2), ((2, 32, 5, 7), 2), ((3, 18, 4, 2), 3), ((1, 512, 6, 6), 2)])
def test_rank4_pixel_shuffle_equals_torch(shape, r):
    x = torch.randn(*shape)
    assert torch.equal(pixel_shuffle_rank4(x, r), F.pixel_shuffle(x, r))
    assert torch.equal(PixelShuffle(r, "rank4")(x), nn.PixelShuffle(r)(x))


def test_pixel_shuffle_modes_share_weights_and_outputs():
    native = dataclasses.replace(load_config("tiny"), strategy="SSD", pixel_shuffle="native")
    rank4 = dataclasses.replace(native, pixel_shuffle="rank4")
    torch.manual_seed(0)
    a = calibrate_bn(build_model(native), native.input_size)
    b = build_model(rank4).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, native.input_size, native.input_size)
    with torch.no_grad():
        y = a(x)
        assert torch.equal(y, b(x))
    assert_meaningful(y.numpy())


def _onnx_bytes(model: nn.Module, size: int) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), f, input_names=["input"],
                          output_names=["heatmaps"], opset_version=17, dynamo=False)
    return f.getvalue()


def test_rank4_onnx_has_no_depth_to_space_and_no_tensor_above_rank4():
    import onnx

    cfg = dataclasses.replace(load_config("tiny"), strategy="SSD")
    ranks = {}
    for mode in ("native", "rank4"):
        m = onnx.shape_inference.infer_shapes(onnx.load_from_string(
            _onnx_bytes(build_model(dataclasses.replace(cfg, pixel_shuffle=mode)).eval(), cfg.input_size)))
        ops = {n.op_type for n in m.graph.node}
        ranks[mode] = (ops, max(len(v.type.tensor_type.shape.dim) for v in m.graph.value_info))
    assert "DepthToSpace" in ranks["native"][0]
    assert "DepthToSpace" not in ranks["rank4"][0]
    assert ranks["rank4"][1] == 4


# ---- ONNX export of every config ----------------------------------------------------

@pytest.mark.parametrize("name", ZOO)
def test_onnx_export_matches_torch(name):
    ort = pytest.importorskip("onnxruntime")
    cfg = load_config(name)
    torch.manual_seed(0)
    model = calibrate_bn(build_model(cfg), cfg.input_size)
    data = _onnx_bytes(model, cfg.input_size)
    x = torch.randn(1, 3, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x.numpy()})
    assert y.shape == ref.shape
    assert_meaningful(ref)
    np.testing.assert_allclose(y, ref, rtol=0, atol=5e-4 * float(np.abs(ref).max()))  # fp32 reassociation in deep nets

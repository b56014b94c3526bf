"""Checkpoints: round trip, atomic writes, and clear errors on mismatch or bad files."""
import dataclasses

import pytest
import torch

from facelm.errors import ConfigError
from facelm.model import build_model, load_checkpoint, load_config, save_checkpoint
from facelm.model.checkpoint import FORMAT, VERSION, load_weights


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # non-default values everywhere, BN buffers included
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1)
    return cfg, model.eval()


def test_round_trip(tmp_path, tiny):
    cfg, model = tiny
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, cfg, {"epoch": 7, "nme": 0.0123, "hist": [1, 2]})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["ck.pt"]  # no temp file left behind
    loaded, cfg2, extra = load_checkpoint(path)
    assert cfg2 == cfg and not loaded.training
    assert extra == {"epoch": 7, "nme": 0.0123, "hist": [1, 2]}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.randn(1, 3, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_overwrite_is_atomic_replace(tmp_path, tiny):
    cfg, model = tiny
    p = tmp_path / "ck.pt"
    save_checkpoint(p, model, cfg, {"epoch": 1})
    save_checkpoint(p, model, cfg, {"epoch": 2})
    assert load_checkpoint(p)[2] == {"epoch": 2}
    assert len(list(tmp_path.iterdir())) == 1


def test_unsafe_extra_is_refused_before_writing(tmp_path, tiny):
    cfg, model = tiny
    with pytest.raises(ConfigError, match=r"extra\.opt is a object"):
        save_checkpoint(tmp_path / "ck.pt", model, cfg, {"opt": object()})
    assert not any(tmp_path.iterdir())


def test_save_refuses_model_that_does_not_fit_config(tmp_path, tiny):
    cfg, model = tiny
    other = dataclasses.replace(cfg, filters=64)
    with pytest.raises(ConfigError, match="do not match the config.*shape"):
        save_checkpoint(tmp_path / "ck.pt", model, other)
    assert not any(tmp_path.iterdir())


def _write_raw(path, config, state_dict, **over):
    payload = {"format": FORMAT, "version": VERSION, "config": config, "state_dict": state_dict, "extra": {}}
    payload.update(over)
    torch.save(payload, path)
    return path


def test_config_weights_mismatch(tmp_path, tiny):
    cfg, model = tiny
    sd = model.state_dict()
    wrong_cfg = dataclasses.replace(cfg, strategy="SD").to_dict()
    with pytest.raises(ConfigError, match=r"unexpected: head\.blocks\.2"):
        load_checkpoint(_write_raw(tmp_path / "a.pt", wrong_cfg, sd))
    shaped = dataclasses.replace(cfg, filters=64).to_dict()
    with pytest.raises(ConfigError, match=r"shape \(weights vs config\): head\.blocks\.0\.conv\.weight"):
        load_checkpoint(_write_raw(tmp_path / "b.pt", shaped, sd))
    partial = {k: v for k, v in sd.items() if not k.startswith("head.final")}
    with pytest.raises(ConfigError, match=r"2 missing: head\.final\.weight, head\.final\.bias"):
        load_checkpoint(_write_raw(tmp_path / "c.pt", cfg.to_dict(), partial))


def test_bad_files(tmp_path, tiny):
    cfg, model = tiny
    with pytest.raises(ConfigError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    good = save_checkpoint(tmp_path / "good.pt", model, cfg)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ConfigError, match="not a facelm checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(ConfigError, match="version 99"):
        load_checkpoint(_write_raw(tmp_path / "v.pt", cfg.to_dict(), model.state_dict(), version=99))
    with pytest.raises(ConfigError, match="unknown model config keys"):
        load_checkpoint(_write_raw(tmp_path / "k.pt", {**cfg.to_dict(), "bogus": 1}, model.state_dict()))


class Evil:
    """A module-level class: picklable, but not on the weights_only allow-list."""


def test_pickled_objects_are_not_loaded(tmp_path, tiny):
    """weights_only=True: a checkpoint smuggling an arbitrary object is refused."""
    cfg, model = tiny
    _write_raw(tmp_path / "evil.pt", cfg.to_dict(), model.state_dict(), extra={"x": Evil()})
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_load_weights_strict(tiny):
    cfg, model = tiny
    other = build_model(cfg)
    load_weights(other, model.state_dict())
    assert all(torch.equal(other.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="missing"):
        load_weights(other, {})

"""Bring your own model: an ONNX file, a ``torch.export`` program or a Python factory.

``facelm convert --model SOURCE`` accepts

- ``model.onnx``: an ONNX heatmap model (static or batch-dynamic, one NCHW image input);
  its reference for parity and drift is **onnxruntime** running that file (there is no
  torch model to compare against);
- ``model.pt2``: a ``torch.export`` program (``torch.export.save``); the reference is the
  program's own module in torch fp32;
- ``package.module:function``: a factory returning an ``nn.Module``; ``--weights`` (a
  state dict, or a dict holding one under ``state_dict``/``model``) is loaded with
  ``torch.load(weights_only=True)``.

Nothing is guessed: the output contract is declared (:class:`DeclaredContract`, from flags
or a small YAML). The heatmap stride is either declared or derived from the model's
output shape; a model whose output does not match the declared K (from the layout) and
stride is refused with one message naming both shapes (:func:`check_output_shape`).
Parameters that are not finite are refused at load.

Every source is brought to the same form as a zoo model before the chain runs: an ONNX
graph with a static ``1x3xSxS`` input named ``input`` and an NCHW output named
``heatmaps`` (an NHWC model gets one Transpose appended, so every target decodes the same
tensor). :func:`load_source` returns a :class:`BroughtModel`; the pipeline uses its
``reference`` (fp32 heatmaps of the source) and ``write_onnx``.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelm.errors import ConfigError, ConversionError, InputError

log = logging.getLogger(__name__)

OUTPUT_LAYOUTS = ("NCHW", "NHWC")
#: ``--contract`` YAML keys (and the matching ``facelm convert`` flags).
CONTRACT_KEYS = ("name", "layout", "input_size", "stride", "mean", "std", "color", "output_layout", "decode",
                 "blur_kernel")


@dataclass(frozen=True)
class DeclaredContract:
    """What a brought model's user declares about it.

    Attributes:
        layout: ``jd106`` | ``wflw98`` | ``ibug68`` (gives K).
        input_size: side S of the square input crop, pixels.
        stride: input pixels per heatmap cell; ``None`` = derived from the output shape.
        mean, std: per-channel normalisation of ``pixel / 255``, in the network's channel order.
        color: ``RGB`` or ``BGR`` (the network's channel order).
        output_layout: ``NCHW`` (N, K, h, w) or ``NHWC`` (N, h, w, K).
        decode: ``dark`` | ``quarter`` | ``argmax``; blur_kernel: DARK's Gaussian kernel.
        name: model name in the manifest (default: the source's stem).
    """

    layout: str
    input_size: int
    stride: float | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color: str = "RGB"
    output_layout: str = "NCHW"
    decode: str = "dark"
    blur_kernel: int = 11
    name: str | None = None

    def __post_init__(self) -> None:
        from facelm.codec import DecodeConfig
        from facelm.layouts import get_layout

        get_layout(self.layout)  # ConfigError/InputError naming the known layouts
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 16:
            raise ConfigError(f"input_size must be an integer >= 16 pixels, got {self.input_size!r}")
        if self.stride is not None and not (isinstance(self.stride, (int, float)) and math.isfinite(self.stride)
                                            and self.stride > 0):
            raise ConfigError(f"stride must be a positive number of input pixels per heatmap cell, got {self.stride!r}")
        if self.output_layout not in OUTPUT_LAYOUTS:
            raise ConfigError(f"output_layout must be one of {OUTPUT_LAYOUTS}, got {self.output_layout!r}")
        self.normalization()  # validates mean/std/color
        DecodeConfig(method=self.decode, blur_kernel=self.blur_kernel)

    @property
    def num_keypoints(self) -> int:
        from facelm.layouts import get_layout

        return get_layout(self.layout).num_points

    def normalization(self):
        from facelm.preprocess import Normalization

        return Normalization(tuple(self.mean), tuple(self.std), self.color)

    def decode_config(self):
        from facelm.codec import DecodeConfig

        return DecodeConfig(method=self.decode, blur_kernel=self.blur_kernel)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_mapping(cls, d: dict, where: str = "contract") -> "DeclaredContract":
        """Build from a mapping (YAML or flags); unknown keys and missing layout/input_size are refused."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping of {', '.join(CONTRACT_KEYS)}")
        unknown = sorted(set(d) - set(CONTRACT_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {', '.join(CONTRACT_KEYS)}")
        missing = [k for k in ("layout", "input_size") if d.get(k) is None]
        if missing:
            raise ConfigError(f"{where}: a brought model needs {' and '.join(missing)} declared "
                              "(--layout/--input-size or the contract YAML)")
        kw = {k: v for k, v in d.items() if v is not None}
        for key in ("mean", "std"):
            if key in kw:
                v = kw[key]
                if isinstance(v, str):
                    v = [p for p in v.replace(",", " ").split() if p]
                try:
                    kw[key] = tuple(float(a) for a in v)
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: {key} must be 3 numbers, got {d[key]!r}") from None
        if "stride" in kw:
            try:
                kw["stride"] = float(kw["stride"])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: stride must be a number, got {d['stride']!r}") from None
        for key in ("input_size", "blur_kernel"):
            if key in kw and isinstance(kw[key], str) and kw[key].isdigit():
                kw[key] = int(kw[key])
        for key in ("output_layout", "color"):
            if key in kw and isinstance(kw[key], str):
                kw[key] = kw[key].upper()
        if isinstance(kw.get("decode"), str):
            kw["decode"] = kw["decode"].lower()
        return cls(**kw)


def read_contract_yaml(path: str | os.PathLike) -> dict:
    """A contract YAML -> mapping (``yaml.safe_load``)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"contract file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"contract file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"contract file {p}: expected a mapping of {', '.join(CONTRACT_KEYS)}")
    return data


# ---------------------------------------------------------------------------- shapes
def expected_output_shape(declared: DeclaredContract, heatmap: tuple[int, int]) -> tuple[int, ...]:
    k = declared.num_keypoints
    h, w = heatmap
    return (1, k, h, w) if declared.output_layout == "NCHW" else (1, h, w, k)


def check_output_shape(shape: tuple[int, ...], declared: DeclaredContract) -> tuple[int, int]:
    """The heatmap size (h, w) of a model output ``shape``, checked against the declaration.

    With a declared stride, the output must be exactly ``(1, K, S/stride, S/stride)`` (NCHW)
    or ``(1, S/stride, S/stride, K)`` (NHWC); without one, K must match and the stride is
    ``S / h`` (square heatmaps).

    Raises:
        InputError: one message naming the model's output shape and the declared one.
    """
    shape = tuple(int(s) for s in shape)
    k, s = declared.num_keypoints, declared.input_size
    where = (f"declared {declared.output_layout} output for {declared.layout} (K={k}), "
             f"input {s} px")
    if declared.stride is not None:
        side = s / declared.stride
        want_hw = (int(round(side)), int(round(side)))
        want = expected_output_shape(declared, want_hw)
        if abs(side - round(side)) > 1e-6 or shape != want:
            raise InputError(f"model output shape {shape} does not match the {where}, stride "
                             f"{declared.stride:g}: expected {want}")
        return want_hw
    if len(shape) != 4:
        raise InputError(f"model output shape {shape} does not match the {where}: expected 4-D "
                         f"{expected_output_shape(declared, (0, 0))[:1]} + (K, h, w) or (h, w, K)")
    hw = shape[2:4] if declared.output_layout == "NCHW" else shape[1:3]
    want = expected_output_shape(declared, hw)
    if shape != want or hw[0] != hw[1] or hw[0] < 2:
        raise InputError(f"model output shape {shape} does not match the {where}: expected "
                         f"{expected_output_shape(declared, (hw[0], hw[0]))} (square heatmaps, K={k})")
    return (int(hw[0]), int(hw[1]))


# --------------------------------------------------------------------------- sources
@dataclass
class BroughtModel:
    """A brought model, ready for the chain.

    Attributes:
        kind: ``onnx`` | ``pt2`` | ``factory`` (the manifest's ``model.source``).
        name: the model name.
        module: the torch module (NCHW output), or ``None`` for an ONNX source.
        onnx_model: the normalised ONNX model (ONNX sources only).
        heatmap_size: (h, w), checked against the declaration.
        weights_file, weights_sha256: what was loaded (basename and hash).
        reference_name: what the fp32 reference is (``torch`` or ``onnxruntime``).
    """

    kind: str
    name: str
    declared: DeclaredContract
    module: Any
    onnx_model: Any
    heatmap_size: tuple[int, int]
    weights_file: str
    weights_sha256: str | None

    @property
    def reference_name(self) -> str:
        return "onnxruntime" if self.module is None else "torch"

    def reference(self, x: np.ndarray) -> np.ndarray:
        """fp32 heatmaps of the source. (N, 3, S, S) float32 -> (N, K, h, w) float32 (NCHW)."""
        from facelm.converters import onnx_export as ox

        if self.module is not None:
            return ox.torch_heatmaps(self.module, x)
        return _ort_run(self.onnx_model, x)

    def write_onnx(self, path: Path) -> Path:
        """The model as the chain's ONNX (static ``input`` 1x3xSxS -> NCHW ``heatmaps``)."""
        from facelm.converters import onnx_export as ox
        from facelm.fileio import atomic_path

        if self.module is not None:
            return ox.export_onnx(self.module, path, self.declared.input_size, fold_bn=False)
        import onnx

        with atomic_path(path, suffix=".onnx") as tmp:
            onnx.save(self.onnx_model, str(tmp))
        return path


def load_source(source: str, declared: DeclaredContract, weights: str | None = None) -> BroughtModel:
    """Load ``source`` (see the module docstring) and check its output against ``declared``.

    Raises:
        InputError: missing file, bad factory path, non-finite parameters, a wrong input or
            output shape (naming both shapes).
        ConversionError: the source cannot be read or run.
    """
    from facelm.fileio import sha256_file

    src = str(source)
    if src.endswith(".onnx"):
        if weights:
            raise ConfigError("--weights goes with a factory (package.module:function), not an ONNX file")
        path = _existing(src)
        model = normalise_onnx(path, declared)
        hm = check_output_shape(_onnx_output_shape(model, declared), declared)
        return BroughtModel("onnx", declared.name or path.stem, declared, None, model, hm, path.name,
                            sha256_file(path))
    if src.endswith(".pt2"):
        if weights:
            raise ConfigError("--weights goes with a factory (package.module:function); a .pt2 holds its weights")
        path = _existing(src)
        module = _load_pt2(path)
        module = _finish_module(module, declared, path.name)
        return BroughtModel("pt2", declared.name or path.stem, declared, module[0], None, module[1], path.name,
                            sha256_file(path))
    if ":" in src and not os.path.exists(src):
        module = _load_factory(src, weights)
        wname = Path(weights).name if weights else ""
        module = _finish_module(module, declared, src)
        return BroughtModel("factory", declared.name or src.split(":", 1)[1], declared, module[0], None, module[1],
                            wname, sha256_file(weights) if weights else None)
    raise InputError(f"--model {src!r}: expected a .onnx file, a .pt2 torch.export program or "
                     "package.module:function")


def _existing(src: str) -> Path:
    p = Path(src)
    if not p.is_file():
        raise InputError(f"model file {p} does not exist")
    return p


def _check_finite(named: Any, where: str) -> None:
    """Refuse NaN/Inf in any named array (``(name, array)`` pairs)."""
    for name, arr in named:
        a = np.asarray(arr)
        if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
            bad = int(a.size - np.isfinite(a).sum())
            raise InputError(f"{where}: parameter {name!r} has {bad} non-finite value(s) (NaN or Inf); refusing it")


# ---------------------------------------------------------------------------- torch
class _NhwcToNchw:
    """Wraps a module whose output is NHWC so it emits NCHW (built lazily to keep torch optional)."""

    @staticmethod
    def wrap(module):
        import torch

        class NhwcToNchw(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x).permute(0, 3, 1, 2)

        return NhwcToNchw(module).eval()


class _Pt2Module:
    """A torch.export module behind a plain ``nn.Module`` (its own ``eval()`` raises; it has no train mode)."""

    @staticmethod
    def wrap(gm):
        import torch

        class Pt2Program(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.__dict__["inner"] = inner  # not a child: eval()/train() must not reach it

            def forward(self, x):
                return self.inner(x)

            def named_parameters(self, *a, **k):  # noqa: D102 (the program's, for the finite check)
                return self.inner.named_parameters(*a, **k)

            def named_buffers(self, *a, **k):  # noqa: D102
                return self.inner.named_buffers(*a, **k)

        return Pt2Program(gm)


def _finish_module(module, declared: DeclaredContract, where: str):
    """Check parameters and output shape; wrap an NHWC model. Returns (module, heatmap size)."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{where} did not give a torch.nn.Module (got {type(module).__name__})")
    module = module.eval()
    _check_finite(((n, p.detach().cpu().numpy()) for n, p in
                   list(module.named_parameters()) + list(module.named_buffers())), where)
    s = declared.input_size
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, s, s))
    except Exception as exc:  # user code raises anything
        raise InputError(f"{where} cannot run a (1, 3, {s}, {s}) input: {type(exc).__name__}: {exc}") from None
    if isinstance(out, (tuple, list)):
        raise InputError(f"{where} returns {len(out)} outputs; a heatmap model returns one tensor")
    hm = check_output_shape(tuple(out.shape), declared)
    if declared.output_layout == "NHWC":
        module = _NhwcToNchw.wrap(module)
    return module, hm


def _load_pt2(path: Path):
    import torch

    try:
        prog = torch.export.load(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not a torch.export program: {type(exc).__name__}: {exc}") from None
    _check_finite(((n, t.detach().cpu().numpy()) for n, t in prog.state_dict.items()), str(path))
    return _Pt2Module.wrap(prog.module())


def _load_factory(spec: str, weights: str | None):
    """``package.module:function`` -> its module with ``weights`` loaded (weights_only)."""
    import torch

    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name:
        raise InputError(f"--model {spec!r}: expected package.module:function")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # a factory in the current folder, as `python -c` would find it
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputError(f"--model {spec!r}: cannot import {mod_name!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    fn = module
    for part in fn_name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise InputError(f"--model {spec!r}: {mod_name} has no {fn_name!r}")
    if not callable(fn):
        raise InputError(f"--model {spec!r}: {fn_name} is not callable")
    net = fn()
    if not isinstance(net, torch.nn.Module):
        raise InputError(f"--model {spec!r} returned {type(net).__name__}, not a torch.nn.Module")
    if weights is None:
        log.warning("factory %s converted with the weights it initialises itself (no --weights)", spec)
        return net
    wp = Path(weights)
    if not wp.is_file():
        raise InputError(f"weights file {wp} does not exist")
    try:
        state = torch.load(str(wp), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{wp} cannot be loaded with torch.load(weights_only=True): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{wp} holds no state dict (a mapping of names to tensors, or one under 'state_dict'/'model')")
    _check_finite(((k, v.detach().cpu().numpy()) for k, v in state.items()), str(wp))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{wp} does not fit {spec}: {str(exc).splitlines()[0]} "
                         f"({str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else ''})") from None
    return net


# ----------------------------------------------------------------------------- ONNX
def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def normalise_onnx(path: Path, declared: DeclaredContract):
    """Load an ONNX heatmap model and give it the chain's interface.

    The one image input becomes ``input`` with static shape (1, 3, S, S) (a symbolic batch
    is fixed to 1); the one output becomes ``heatmaps`` in NCHW (a Transpose is appended
    for a declared NHWC output). Initializers must be finite.

    Raises:
        InputError: several inputs/outputs, an input that is not (N, 3, S, S), non-finite
            weights, or a file that is not ONNX.
    """
    import onnx
    from onnx import helper, numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not an ONNX model: {type(exc).__name__}: {exc}") from None
    g = model.graph
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    if len(inputs) != 1 or len(g.output) != 1:
        raise InputError(f"{path}: a heatmap model has one image input and one output, this one has "
                         f"{len(inputs)} input(s) and {len(g.output)} output(s)")
    _check_finite(((i.name, numpy_helper.to_array(i)) for i in g.initializer), str(path))
    s = declared.input_size
    inp, out = inputs[0], g.output[0]
    dims = _dims(inp)
    if len(dims) != 4 or dims[1] != 3 or dims[2:] != [s, s] or (isinstance(dims[0], int) and dims[0] not in (0, 1)):
        raise InputError(f"{path}: input {inp.name!r} has shape {tuple(dims)}; expected NCHW (1, 3, {s}, {s}) "
                         f"for the declared {s} px input")
    shape = inp.type.tensor_type.shape
    shape.dim[0].Clear()
    shape.dim[0].dim_value = 1
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InputError(f"{path}: input {inp.name!r} must be float32")
    _rename(g, inp.name, "input")
    out_name = out.name
    if declared.output_layout == "NHWC":
        _rename(g, out_name, "heatmaps_nhwc")
        out.name = "heatmaps"
        g.node.append(helper.make_node("Transpose", ["heatmaps_nhwc"], ["heatmaps"], perm=[0, 3, 1, 2],
                                       name="facelm_nhwc_to_nchw"))
    else:
        _rename(g, out_name, "heatmaps")
    # drop stale shapes of the output and intermediates (the batch is now fixed); inference refills them
    del g.value_info[:]
    out.type.tensor_type.ClearField("shape")
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InputError(f"{path}: not a valid ONNX model after fixing the batch to 1: {type(exc).__name__}: {exc}") from None
    return model


def _rename(g, old: str, new: str) -> None:
    if old == new:
        return
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new
        for i, name in enumerate(n.output):
            if name == old:
                n.output[i] = new
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.name == old:
            v.name = new


def _ort_session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"onnxruntime cannot run the model: {type(exc).__name__}: {exc}") from None


def _onnx_output_shape(model, declared: DeclaredContract) -> tuple[int, ...]:
    """The model's output shape in its *declared* layout (run once on zeros: the shape the user sees)."""
    s = declared.input_size
    out = _ort_session(model).run(None, {"input": np.zeros((1, 3, s, s), np.float32)})[0]
    return tuple(out.shape) if declared.output_layout == "NCHW" else tuple(np.transpose(out, (0, 2, 3, 1)).shape)


def _ort_run(model, x: np.ndarray) -> np.ndarray:
    sess = _ort_session(model)
    return np.concatenate([sess.run(None, {"input": np.ascontiguousarray(x[i:i + 1], np.float32)})[0]
                           for i in range(len(x))], axis=0)


Reference = Callable[[np.ndarray], np.ndarray]

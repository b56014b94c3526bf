"""torch -> ONNX (opset 17, static 1x3xHxW ``input`` -> ``heatmaps``) and onnxruntime parity."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from facelm.errors import ConversionError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"


def fold_deconv_batchnorm(model):
    """A copy of ``model`` with each ``D`` block's BatchNorm folded into its ConvTranspose.

    The ONNX exporter folds Conv+BN but leaves ConvTranspose+BN as a BatchNormalization
    node, which onnx2tf turns into MUL/ADD ops after each TRANSPOSE_CONV. Folding gives the
    same function (eval mode) with one op: for output channel c, with
    ``g = gamma_c / sqrt(var_c + eps)``, ``W'[:, c] = W[:, c] * g`` and
    ``b'_c = (b_c - mean_c) * g + beta_c``. The BN becomes ``Identity``. The original
    model is not modified; its state dict stays the checkpoint's.

    Args:
        model: an eval-mode heatmap model (``facelm.model``), whose ``D`` blocks expose
            ``.deconv`` (ConvTranspose2d, groups=1) and ``.bn`` (BatchNorm2d) used as ``bn(deconv(x))``.
    Returns:
        (folded copy, number of folded blocks).
    """
    import copy

    import torch
    from torch import nn

    from facelm.model.heads import DeconvBlock

    folded = copy.deepcopy(model).eval()
    n = 0
    for block in folded.modules():
        if not isinstance(block, DeconvBlock) or not isinstance(block.bn, nn.BatchNorm2d):
            continue
        dc, bn = block.deconv, block.bn
        if dc.groups != 1 or not bn.track_running_stats:
            continue
        with torch.no_grad():
            g = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
            beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            b0 = dc.bias if dc.bias is not None else torch.zeros_like(bn.running_mean)
            new = nn.ConvTranspose2d(dc.in_channels, dc.out_channels, dc.kernel_size, dc.stride, dc.padding,
                                     dc.output_padding, dc.groups, True, dc.dilation, dc.padding_mode)
            # ConvTranspose2d weight: (C_in, C_out, kH, kW); BN scales output channels (dim 1)
            new.weight.copy_(dc.weight * g.view(1, -1, 1, 1))
            new.bias.copy_((b0 - bn.running_mean) * g + beta)
        block.deconv, block.bn = new.eval(), nn.Identity()
        n += 1
    return folded, n


def _depth_to_space_dcr_class():
    """``DepthToSpaceDCR`` (built lazily: torch is imported only when exporting)."""
    import torch
    from torch import nn

    class _DcrFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, r: int):  # noqa: D401 - (N, r*r*C, H, W) -> (N, C, rH, rW), depth-column-row order
            n, rrc, h, w = x.shape
            c = rrc // (r * r)
            return x.reshape(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)

        @staticmethod
        def symbolic(g, x, r: int):
            return g.op("DepthToSpace", x, blocksize_i=r, mode_s="DCR")

    class DepthToSpaceDCR(nn.Module):
        """ONNX ``DepthToSpace(mode=DCR)``: ``out[n, c, h*r+i, w*r+j] = x[n, (i*r+j)*C + c, h, w]``."""

        def __init__(self, factor: int) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return _DcrFn.apply(x, self.factor)

    return DepthToSpaceDCR


def crd_to_dcr_permutation(channels: int, factor: int = 2) -> list[int]:
    """Channel order that turns a PixelShuffle (CRD) into a DepthToSpace (DCR) of the same result.

    PixelShuffle reads output pixel (c, i, j) from channel ``c*r*r + i*r + j``; DCR reads it from
    ``(i*r + j)*C + c``. So new channel ``q*C + c`` must hold old channel ``c*r*r + q``.

    Returns:
        ``perm`` with ``new = old[perm]`` (a permutation of ``range(channels)``).
    """
    r2 = factor * factor
    c = channels // r2
    return [ci * r2 + q for q in range(r2) for ci in range(c)]


def shuffle_to_depth_to_space(model):
    """A copy of ``model`` whose ``S`` blocks end in one DepthToSpace(DCR) instead of PixelShuffle.

    onnx2tf lowers DCR DepthToSpace to one TFLite DEPTH_TO_SPACE op (XNNPACK runs it in float
    and int8), where the PixelShuffle (CRD) of either formulation becomes 4 TRANSPOSE + 3
    RESHAPE ops. DCR takes the channels in another order, so each block's conv output channels
    and its BatchNorm's per-channel values are permuted (:func:`crd_to_dcr_permutation`): the
    same function (eval mode), the same numbers moved. The original model is not modified.

    Args:
        model: an eval-mode heatmap model whose ``S`` blocks (:class:`facelm.model.heads.ShuffleBlock`)
            are ``shuffle(relu(bn(conv(x))))``.
    Returns:
        (rewritten copy, number of blocks rewritten).
    """
    import copy

    import torch
    from torch import nn

    from facelm.model.heads import ShuffleBlock

    dcr = _depth_to_space_dcr_class()
    out = copy.deepcopy(model).eval()
    n = 0
    for block in out.modules():
        if not isinstance(block, ShuffleBlock) or not isinstance(block.bn, nn.BatchNorm2d) or block.conv.groups != 1:
            continue
        r = block.shuffle.factor
        perm = torch.tensor(crd_to_dcr_permutation(block.conv.out_channels, r))
        with torch.no_grad():
            block.conv.weight.copy_(block.conv.weight[perm])
            if block.conv.bias is not None:
                block.conv.bias.copy_(block.conv.bias[perm])
            for name in ("weight", "bias", "running_mean", "running_var"):
                t = getattr(block.bn, name)
                if t is not None:
                    t.copy_(t[perm])
        block.shuffle = dcr(r)
        n += 1
    return out, n


def export_onnx(model, path: str | os.PathLike, input_size: int, opset: int = OPSET,
                fold_bn: bool = True, depth_to_space: bool = True) -> Path:
    """Export a heatmap model to ONNX with a static batch of one.

    Args:
        model: ``torch.nn.Module`` mapping (1, 3, S, S) float32 to (1, K, h, w) heatmaps.
        path: output ``.onnx`` (written to a temp name, then renamed).
        input_size: S in pixels.
        fold_bn: fold ConvTranspose+BN first (:func:`fold_deconv_batchnorm`); callers
            check parity against the unfolded model.
        depth_to_space: export ``S`` blocks' PixelShuffle as DepthToSpace(DCR) with their conv
            channels permuted (:func:`shuffle_to_depth_to_space`): one TFLite op instead of 7.
    Returns:
        ``path``.
    Raises:
        ConversionError: the exporter failed or the exported graph does not check.
    """
    import onnx
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    model = model.eval()
    if fold_bn:
        model, _ = fold_deconv_batchnorm(model)
    if depth_to_space:
        model, _ = shuffle_to_depth_to_space(model)
    dummy = torch.zeros(1, 3, input_size, input_size, dtype=torch.float32)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (dummy,), str(tmp), opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamo=False, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # the exporter raises many types
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"torch -> ONNX export failed: {type(exc).__name__}: {exc}") from exc
    os.replace(tmp, path)
    return path


def torch_heatmaps(model, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run the torch model in fp32. (N, 3, S, S) float32 -> (N, K, h, w) float32."""
    import torch

    model = model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))).numpy())
    return np.concatenate(out, axis=0)


def onnx_heatmaps(onnx_path: str | os.PathLike, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run the ONNX model with onnxruntime (CPU), one image at a time. Same shapes as :func:`torch_heatmaps`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {INPUT_NAME: x[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(x))], axis=0)


def max_abs_diff(ref: np.ndarray, test: np.ndarray) -> float:
    """Largest absolute element difference of two same-shaped arrays."""
    if ref.shape != test.shape:
        raise ConversionError(f"shape mismatch: reference {ref.shape} vs artifact {test.shape}")
    return float(np.max(np.abs(ref.astype(np.float64) - test.astype(np.float64))))

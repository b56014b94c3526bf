"""``facelm app-kit``: write the folder an app developer receives with a converted model.

::

    KIT/
      model.tflite            the chosen artifact (with the facelm metadata conversion embedded)
      manifest.json           the artifact folder's manifest, listing only model.tflite
      native/                 portable C99: facelm_landmarks.{h,c}, facelm_dark.{h,c} (the codec's
                              own C core, copied), facelm_model_params.h (generated from the
                              manifest), the golden test driver, a LiteRT C API example, CMakeLists.txt
      android/                JNI glue, the Java class FaceLandmarks, a Java golden test, INTEGRATION.md
      golden/                 case_NNN.{json,ppm,input.bin,output.bin} from the Python runtime
      README.md, Makefile     ``make test`` / ``test-arm64`` / ``test-jni`` / ``example``

Every model constant the C code uses is written into ``facelm_model_params.h`` from the
manifest by :func:`model_params_header`; nothing is retyped. The golden vectors come from the
Python runtime itself (:func:`facelm.preprocess.preprocess_face`,
:class:`facelm.runtime.tflite.TfliteRunner`, :func:`facelm.postprocess.output_to_landmarks`),
cross-checked against :class:`facelm.Landmarker` while the kit is written.

The kit is written into a temporary sibling of ``out`` and renamed into place at the end, so
a failure leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from facelm.artifacts import DEFAULT_RUNTIME_ARTIFACT
from facelm.errors import InputError
from facelm.fileio import atomic_dir

#: Landmarks of the C library must match the Python runtime's within this (image pixels).
GOLDEN_LANDMARK_TOL_PX = 0.05
#: The kit's model file and the DARK core copied from facelm.codec (never a second implementation).
MODEL_FILE = "model.tflite"
DARK_SOURCES = ("facelm_dark.h", "facelm_dark.c")
#: Synthetic faces used as golden cases: facelm.data.synth.sample(GOLDEN_SEED, i).
GOLDEN_SEED = 2024
TEMPLATES = Path(__file__).resolve().parent / "templates"
_DTYPES = {"float32": "FACELM_DTYPE_FLOAT32", "int8": "FACELM_DTYPE_INT8", "uint8": "FACELM_DTYPE_UINT8"}
_METHODS = {"argmax": "FACELM_METHOD_ARGMAX", "quarter": "FACELM_METHOD_QUARTER", "dark": "FACELM_METHOD_DARK"}


class KitError(InputError):
    """The app kit cannot be written from these inputs (the message names the problem)."""


@dataclass
class KitResult:
    """What :func:`build_kit` wrote.

    Attributes:
        path: the kit folder.
        artifact: the artifact name it packs (e.g. ``"int8"``).
        cases: golden case JSON paths, relative to ``path``.
    """

    path: Path
    artifact: str
    cases: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------ params header
def _c_double(v: float) -> str:
    text = repr(float(v))
    if not np.isfinite(v):
        raise KitError(f"cannot write the non-finite value {v} into facelm_model_params.h")
    return text if any(c in text for c in ".eE") else text + ".0"


def _c_string(s: str) -> str:
    return json.dumps(str(s), ensure_ascii=True)  # a valid C string literal for these characters


def _tensor_fields(spec, what: str) -> tuple[str, str, str, int]:
    """(dtype macro, layout macro, scale literal, zero point) of an artifact's input/output TensorSpec."""
    if spec is None:
        raise KitError(f"the manifest does not describe the artifact's {what} tensor")
    if spec.dtype not in _DTYPES:
        raise KitError(f"the artifact's {what} tensor is {spec.dtype}; the app kit handles "
                       f"{', '.join(_DTYPES)} tensors (pick another --artifact)")
    q = spec.quantization
    if spec.dtype != "float32" and q is None:
        raise KitError(f"the artifact's {spec.dtype} {what} tensor has no quantization in the manifest")
    scale, zp = (q.scale, q.zero_point) if (q is not None and spec.dtype != "float32") else (0.0, 0)
    return _DTYPES[spec.dtype], f"FACELM_TENSOR_{spec.layout}", _c_double(scale), int(zp)


def _check_shapes(manifest, entry) -> None:
    model = manifest.model
    s = model.input_side
    h, w = model.heatmap_size
    k = model.num_keypoints
    want_in = {"NHWC": (1, s, s, 3), "NCHW": (1, 3, s, s)}[entry.input.layout]
    want_out = {"NHWC": (1, h, w, k), "NCHW": (1, k, h, w)}[entry.output.layout]
    if tuple(entry.input.shape) != want_in or tuple(entry.output.shape) != want_out:
        raise KitError(f"artifact {entry.name!r}: tensor shapes {list(entry.input.shape)} -> {list(entry.output.shape)} "
                       f"do not match the model section ({s}x{s} input, {h}x{w}x{k} heatmaps)")


def model_params_header(manifest, artifact: str) -> str:
    """The text of ``facelm_model_params.h`` for one artifact of a loaded manifest.

    Every value comes from the manifest's typed sections (model, preprocess, decode) and the
    artifact's input/output :class:`facelm.runtime.TensorSpec`; doubles are written with
    Python's shortest round-trip ``repr``, so C reads back the very same numbers.
    """
    entry = manifest.artifact(artifact)
    _check_shapes(manifest, entry)
    model, pre, dec = manifest.model, manifest.preprocess, manifest.decode
    norm = pre.normalization
    in_dtype, in_layout, in_scale, in_zp = _tensor_fields(entry.input, "input")
    out_dtype, out_layout, out_scale, out_zp = _tensor_fields(entry.output, "output")
    if dec.method not in _METHODS:
        raise KitError(f"decode method {dec.method!r} has no C counterpart")
    tpl = [v for p in pre.five_point_template for v in p]
    three = lambda vals: "{" + ", ".join(_c_double(v) for v in vals) + "}"  # noqa: E731
    h, w = model.heatmap_size
    sx, sy = model.stride
    lines = [
        "/*",
        " * facelm_model_params.h: GENERATED by `facelm app-kit` from manifest.json. Do not edit;",
        " * regenerate the kit instead. Every value below is read from the manifest.",
        " */",
        "#ifndef FACELM_MODEL_PARAMS_H",
        "#define FACELM_MODEL_PARAMS_H",
        "",
        '#include "facelm_landmarks.h"',
        "",
        f"#define FACELM_MODEL_NAME {_c_string(model.name)}",
        f"#define FACELM_MODEL_ARTIFACT {_c_string(entry.name)}",
        f"#define FACELM_MODEL_FILE {_c_string(MODEL_FILE)}",
        f"#define FACELM_MODEL_SHA256 {_c_string(entry.sha256)}",
        f"#define FACELM_MODEL_LAYOUT_NAME {_c_string(manifest.layout.name)}",
        f"#define FACELM_MODEL_INPUT_SIZE {model.input_side}",
        f"#define FACELM_MODEL_NUM_KEYPOINTS {model.num_keypoints}",
        f"#define FACELM_MODEL_HEATMAP_H {h}",
        f"#define FACELM_MODEL_HEATMAP_W {w}",
        f"#define FACELM_MODEL_INPUT_DTYPE {in_dtype}",
        f"#define FACELM_MODEL_OUTPUT_DTYPE {out_dtype}",
        "",
        "/* Initializer of a facelm_model_desc (facelm_landmarks.h), in field order. */",
        "#define FACELM_MODEL_DESC_INIT \\",
        "    { \\",
        f"        {model.input_side}, /* input_size */ \\",
        f"        {1 if norm.color == 'BGR' else 0}, /* color_bgr ({norm.color}) */ \\",
        f"        {three(norm.mean)}, /* mean */ \\",
        f"        {three(norm.std)}, /* std */ \\",
        "        {" + ", ".join(_c_double(v) for v in tpl) + "}, /* template_points */ \\",
        f"        {in_dtype}, {in_layout}, {in_scale}, {in_zp}, /* input dtype, layout, scale, zero point */ \\",
        f"        {model.num_keypoints}, {h}, {w}, /* num_keypoints, heatmap_h, heatmap_w */ \\",
        f"        {_c_double(sx)}, {_c_double(sy)}, /* stride_x, stride_y */ \\",
        f"        {out_dtype}, {out_layout}, {out_scale}, {out_zp}, /* output dtype, layout, scale, zero point */ \\",
        f"        {_METHODS[dec.method]}, {int(dec.blur_kernel)} /* decode method, blur kernel */ \\",
        "    }",
        "",
        "#endif /* FACELM_MODEL_PARAMS_H */",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- golden
def input_tolerance(entry, normalization) -> tuple[float, float, float]:
    """Per-channel tolerance on the input tensor, in tensor units.

    One quantization step for an integer input; 2/255/std (two pixel levels) for a float
    input. The C warp is bit-exact with OpenCV's fixed-point bilinear, so differences only
    come from last-bit differences of the similarity (a rounding tie of the 1/32 grid).
    """
    if entry.input.dtype != "float32":
        return (1.0, 1.0, 1.0)
    return tuple(2.0 / 255.0 / s for s in normalization.std)


def _write_ppm(path: Path, rgb: np.ndarray) -> None:
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = img.shape[:2]
    path.write_bytes(f"P6\n{w} {h}\n255\n".encode("ascii") + img.tobytes())


def _little_endian(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).astype(np.asarray(a).dtype.newbyteorder("<"), copy=False).tobytes()


def golden_case(folder: Path, name: str, image: np.ndarray, five_points: np.ndarray, manifest, entry, runner,
                landmarker, source: str) -> Path:
    """Write one golden case (``name``.json, .ppm, .input.bin, .output.bin) into ``folder``.

    Args:
        image: (H, W, 3) uint8 RGB.
        five_points: (5, 2) image pixels.
        runner: a :class:`facelm.runtime.tflite.TfliteRunner` of the kit's model.
        landmarker: a :class:`facelm.Landmarker` of the same model (cross-check).
    Returns:
        The JSON path.
    Raises:
        KitError: the Landmarker and the step-by-step runtime disagree (a runtime bug).
    """
    from facelm.postprocess import output_to_landmarks
    from facelm.preprocess import preprocess_face

    # float32-representable, as the C and Java APIs take them (float[10]), so both sides align
    # with the very same points and the transforms agree to the last bits.
    five = np.asarray(five_points, dtype=np.float64).astype(np.float32).astype(np.float64)
    x, m = preprocess_face(image, five, manifest.model.input_side, manifest.preprocess.normalization)
    tensor = runner.prepare(x[None])
    raw = runner.invoke(tensor)
    lms = output_to_landmarks(raw, entry.output, manifest.model, manifest.decode, m)
    ref = landmarker.detect(image, five)
    gap = float(np.max(np.abs(ref.landmarks - lms.image[0])))
    if not gap <= 1e-6:
        raise KitError(f"golden case {name}: facelm.Landmarker and the step-by-step runtime differ by {gap:.3g} px")
    _write_ppm(folder / f"{name}.ppm", image)
    (folder / f"{name}.input.bin").write_bytes(_little_endian(tensor))
    (folder / f"{name}.output.bin").write_bytes(_little_endian(raw))
    doc = {
        "image": f"{name}.ppm",
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "source": source,
        "five_points": five.tolist(),
        "transform": np.asarray(m, dtype=np.float64).tolist(),
        "input_tensor": f"{name}.input.bin",
        "input_spec": entry.input.to_dict(),
        "raw_output": f"{name}.output.bin",
        "output_spec": entry.output.to_dict(),
        "tolerance": {
            "input_per_channel": list(input_tolerance(entry, manifest.preprocess.normalization)),
            "input_units": "quantization steps" if entry.input.dtype != "float32" else "normalised value",
            "landmarks_px": GOLDEN_LANDMARK_TOL_PX,
        },
        "landmarks": lms.image[0].tolist(),
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def synthetic_cases(count: int = 3) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Golden faces from the synthetic generator: ``(source, image (H, W, 3) uint8 RGB, five points (5, 2))``.

    Case 0 is a whole image; case 1 a non-square crop of one; case 2 cuts the face at its nose,
    so the aligned crop reaches past the image border (the warp's zero border is exercised).
    """
    from facelm.data.synth import sample
    from facelm.layouts import get_layout

    five_of = get_layout("jd106").five_points  # synthetic faces are JD-106
    out = []
    for i in range(count):
        img, lm = sample(GOLDEN_SEED, i)
        five = five_of(lm)
        if i % 3 == 1:
            y0, x0 = 12, 30
            img = img[y0:img.shape[0] - 20, x0:img.shape[1] - 6]
            five = five - [x0, y0]
        elif i % 3 == 2:
            x0 = int(five[2, 0])
            img = img[:, x0:]
            five = five - [x0, 0]
        out.append((f"synthetic:{GOLDEN_SEED}:{i}", np.ascontiguousarray(img), five))
    return out


# ------------------------------------------------------------------------------- kit
def _fill(text: str, values: dict[str, str]) -> str:
    for key, val in values.items():
        text = text.replace("{{" + key + "}}", val)
    if "{{" in text and "}}" in text[text.index("{{"):]:
        raise KitError(f"template placeholder left unfilled near {text[text.index('{{'):][:40]!r}")
    return text


def _copy_templates(src: Path, dst: Path, values: dict[str, str]) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".md", ".txt", ".mk") or path.name in ("Makefile", "CMakeLists.txt"):
            target.write_text(_fill(path.read_text(), values))
        else:
            shutil.copyfile(path, target)


def _dark_core_dir() -> Path:
    import facelm.codec

    folder = Path(facelm.codec.__file__).resolve().parent / "csrc"
    missing = [f for f in DARK_SOURCES if not (folder / f).is_file()]
    if missing:
        raise KitError(f"the codec's C core is missing {missing} in {folder}; reinstall facelm")
    return folder


def _check_request(artifacts: Path, out: Path, force: bool) -> None:
    from facelm.runtime.manifest import MANIFEST_NAME

    if not artifacts.is_dir():
        raise KitError(f"{artifacts} is not a folder; give the artifact folder written by `facelm convert`")
    if not (artifacts / MANIFEST_NAME).is_file():
        raise KitError(f"{artifacts} has no {MANIFEST_NAME}; give the artifact folder written by `facelm convert`")
    if out.exists() and not force:
        raise KitError(f"{out} already exists; use --force to replace it")
    if out.exists() and not out.is_dir():
        raise KitError(f"{out} exists and is not a folder; refusing to replace it")
    if out.resolve() == artifacts.resolve() or artifacts.resolve().is_relative_to(out.resolve()):
        raise KitError(f"--out {out} would replace the artifact folder {artifacts}")


def build_kit(artifacts: str | os.PathLike, out: str | os.PathLike, artifact: str = DEFAULT_RUNTIME_ARTIFACT,
              force: bool = False, cases: int = 3, extra_cases: Sequence[tuple[str, np.ndarray, np.ndarray]] = ()) -> KitResult:
    """Write the app kit for one ``.tflite`` artifact of a converted folder.

    Args:
        artifacts: folder with ``manifest.json`` (``facelm convert`` output).
        out: kit folder to write (replaced only with ``force``).
        artifact: manifest name of the ``.tflite`` to pack (default
            :data:`facelm.artifacts.DEFAULT_RUNTIME_ARTIFACT`; any TFLite entry of the manifest).
        cases: number of synthetic golden faces (at least 1).
        extra_cases: more golden faces, ``(source label, (H, W, 3) uint8 RGB image, (5, 2) five points)``.
    Returns:
        :class:`KitResult`.
    Raises:
        KitError / ManifestError: no manifest, unknown or non-TFLite artifact, hash mismatch,
            existing ``out`` without ``force``, unsupported tensor types. Nothing is written then.
    """
    from facelm.runtime import Landmarker, load_manifest, write_manifest
    from facelm.runtime.tflite import TfliteRunner

    artifacts, out = Path(artifacts), Path(out)
    _check_request(artifacts, out, force)
    if int(cases) < 1:
        raise KitError(f"cases must be at least 1, got {cases}")
    manifest = load_manifest(artifacts, verify=False)
    entry = manifest.artifact(artifact)
    if entry.format != "tflite" or not entry.file.endswith(".tflite"):
        tflites = [a.name for a in manifest.artifacts if a.format == "tflite"]
        raise KitError(f"artifact {artifact!r} is {entry.file} ({entry.format}), not a .tflite; the app kit packs "
                       f"one of {tflites}")
    source = manifest.artifact_path(artifact, verify=True)
    header = model_params_header(manifest, artifact)  # validates the tensors before anything is written
    dark = _dark_core_dir()

    # _check_request refused an existing out without force before any work was done
    with atomic_dir(out, force=True, what="kit folder") as tmp:
        shutil.copyfile(source, tmp / MODEL_FILE)
        kit_manifest = manifest.with_artifacts([replace(entry, file=MODEL_FILE)])
        write_manifest(kit_manifest, tmp)
        values = {
            "MODEL_NAME": manifest.model.name, "ARTIFACT": entry.name, "INPUT_SIZE": str(manifest.model.input_side),
            "NUM_KEYPOINTS": str(manifest.model.num_keypoints), "INPUT_DTYPE": entry.input.dtype,
            "OUTPUT_DTYPE": entry.output.dtype, "LAYOUT_NAME": manifest.layout.name,
            "HEATMAP": "x".join(str(v) for v in manifest.model.heatmap_size),
            "INPUT_SHAPE": str(list(entry.input.shape)), "OUTPUT_SHAPE": str(list(entry.output.shape)),
        }
        _copy_templates(TEMPLATES / "native", tmp / "native", values)
        _copy_templates(TEMPLATES / "android", tmp / "android", values)
        _copy_templates(TEMPLATES / "kit", tmp, values)
        for name in DARK_SOURCES:
            shutil.copyfile(dark / name, tmp / "native" / name)
        (tmp / "native" / "facelm_model_params.h").write_text(header)

        golden = tmp / "golden"
        golden.mkdir()
        runner = TfliteRunner(tmp / MODEL_FILE)
        _check_runner(runner, entry)
        written = []
        with Landmarker.create_from_model_path(tmp, artifact=entry.name) as lm:
            all_cases = synthetic_cases(int(cases)) + list(extra_cases)
            for i, (label, image, five) in enumerate(all_cases):
                path = golden_case(golden, f"case_{i:03d}", np.asarray(image), np.asarray(five), manifest, entry,
                                   runner, lm, label)
                written.append(str(path.relative_to(tmp)))
    return KitResult(path=out, artifact=entry.name, cases=written)


def _check_runner(runner, entry) -> None:
    """The manifest's tensor specs must be the model file's own (dtype and quantization)."""
    for what, spec, actual in (("input", entry.input, runner.input_spec), ("output", entry.output, runner.output_spec)):
        same_q = (spec.quantization is None) == (actual.quantization is None) and (
            spec.quantization is None or (np.isclose(spec.quantization.scale, actual.quantization.scale, rtol=1e-6)
                                          and spec.quantization.zero_point == actual.quantization.zero_point))
        if spec.dtype != actual.dtype or tuple(spec.shape) != tuple(actual.shape) or not same_q:
            raise KitError(f"the manifest's {what} tensor ({spec.dtype} {list(spec.shape)}, {spec.quantization}) is not "
                           f"the model file's ({actual.dtype} {list(actual.shape)}, {actual.quantization})")

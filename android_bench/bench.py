"""Benchmark artifacts on devices (in parallel, one worker per device) or on this host.

:func:`bench` is the Python API behind ``facelm bench``. Every finished run is
appended to the results file at once, so a device lost mid-run keeps what it
finished; ``resume=True`` skips runs already in the file.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelm.errors import ConfigError, DeviceError, FacelmError, InputError
from facelm.fileio import sha256_file

from . import records as rec
from .adb import Adb, NoDeviceError
from .config import DEFAULT_RESULTS, SYNTHETIC_DRIFT_SOURCE, BenchOptions, BenchRequest
from .runners import BenchmarkModelRunner, BinaryCrashError, LocalTfliteRunner, tflite_io

log = logging.getLogger(__name__)
#: ``Target.integrity`` (and each record's ``artifact.integrity``): the manifest's sha256 matched.
VERIFIED = "verified: manifest sha256"
#: ... no manifest.json lists the file: its bytes are benchmarked as found.
UNVERIFIED = "unverified: no manifest"
#: ... no manifest lists it, but its embedded seal (facelm.runtime.tflite_seal) matched.
EMBEDDED = "verified: embedded sha256"
#: Why native artifacts need ``--allow-native-code`` (the CLI help says it too).
NATIVE_CODE_WHY = ("loading a shared library (a TVM .so) runs code from it, and a manifest's sha256 "
                   "protects against corruption, not against a substituted file with a matching hash")


@dataclass(frozen=True)
class Target:
    """One artifact to benchmark. ``manifest_dir``/``entry`` are set for manifest artifacts."""

    name: str
    path: Path
    sha256: str
    size: int
    manifest_dir: Path | None = None
    entry: str | None = None
    fmt: str = "tflite"
    target: dict | None = None
    inputs: tuple = ()
    outputs: tuple = ()
    platform: str = "any"
    #: how the file's bytes were checked: VERIFIED, or UNVERIFIED (no manifest lists it)
    integrity: str = "unverified: no manifest"

    @property
    def android(self) -> bool:
        """Built for Android (a TVM library that cannot load on the host); from the catalogue's platform."""
        return self.platform == "android-arm64"


def _from_entry(folder: Path, a) -> Target:
    from .tvm_runners import tensor_specs

    io = (tuple(tensor_specs(a.input)), tuple(tensor_specs(a.output))) if a.format == "tvm_so" else ((), ())
    return Target(a.name, (folder / a.file).resolve(), a.sha256, a.bytes, folder.resolve(), a.name, a.format,
                  a.target, *io, platform=a.platform, integrity=VERIFIED)


def resolve_targets(path: Path, artifacts: list[str] | None = None,
                    formats: tuple = ("tflite",)) -> list[Target]:
    """``.tflite`` file or artifact folder -> targets (manifest hashes verified).

    A folder must hold a ``manifest.json``; its TFLite artifacts are benchmarked
    (``artifacts`` narrows them by name). A lone ``.tflite`` whose folder has a
    manifest listing it gets that manifest (so ``--drift`` works); any other
    ``.tflite`` (e.g. a third-party model) is benchmarked as is.
    """
    path = Path(path)
    if path.is_dir():
        from facelm.runtime import MANIFEST_NAME, load_manifest

        if not (path / MANIFEST_NAME).is_file():
            tflites = sorted(path.glob("*.tflite"))
            if not tflites:
                raise InputError(f"{path} has neither a manifest.json nor .tflite files")
            return [_plain(p) for p in tflites if not artifacts or p.stem in artifacts]
        manifest = load_manifest(path, verify=True)
        entries = [a for a in manifest.artifacts if a.format in formats]
        if artifacts:
            unknown = set(artifacts) - {a.name for a in entries}
            if unknown:
                raise InputError(f"no {'/'.join(formats)} artifacts {sorted(unknown)} in {path}; "
                                 f"it has {[a.name for a in entries]}")
            entries = [a for a in entries if a.name in artifacts]
        if not entries:
            raise InputError(f"{path}/manifest.json lists no {'/'.join(formats)} artifacts")
        return [_from_entry(path, a) for a in entries]
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.suffix != ".tflite":
        raise InputError(f"{path} is not a .tflite file or an artifact folder")
    from facelm.runtime import MANIFEST_NAME, load_manifest

    if (path.parent / MANIFEST_NAME).is_file():
        manifest = load_manifest(path.parent, verify=False)
        for a in manifest.artifacts:
            if a.file == path.name:
                manifest = load_manifest(path.parent, verify=False)
                from facelm.runtime.manifest import verify_artifact

                verify_artifact(path.parent, a)
                return [_from_entry(path.parent, a)]
    return [_plain(path)]


def _plain(path: Path) -> Target:
    """A file no manifest lists: verified by its embedded seal if it has one (a facelm .tflite
    copied out of its folder), else benchmarked as found (InputError when a seal does not match)."""
    from facelm.runtime.tflite_seal import check_tflite_seal

    integrity = EMBEDDED if check_tflite_seal(path) else UNVERIFIED
    return Target(path.stem, path.resolve(), sha256_file(path), path.stat().st_size, integrity=integrity)


def is_native(target: Target) -> bool:
    """True when benchmarking ``target`` loads native code (the catalogue's native formats)."""
    from facelm.artifacts import NATIVE_FORMATS, artifact_kind

    if target.fmt in NATIVE_FORMATS:
        return True
    try:
        return target.entry is not None and artifact_kind(target.entry).native
    except FacelmError:  # not a catalogue name
        return False


def split_native(targets: list[Target], allow_native_code: bool, named: list[str] | None) -> tuple[list, list]:
    """(targets to run, native targets skipped): native code runs only when allowed or named explicitly."""
    named_set = set(named or ())
    keep, skipped = [], []
    for t in targets:
        (skipped if is_native(t) and not allow_native_code and t.name not in named_set else keep).append(t)
    return keep, skipped


@dataclass
class BenchResult:
    """What one :func:`bench` call did: its records and the per-device errors."""

    records: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    skipped: int = 0
    backend_note: str = ""
    #: one line each, for the user: native artifacts not loaded, unverified files, ...
    notes: list = field(default_factory=list)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(runner, target: Target, options: BenchOptions) -> dict:
    facts = runner.facts()
    return {
        "schema": rec.SCHEMA, "time": _now(), "backend": runner.backend, "status": "ok", "error": None,
        "stderr_tail": None, "device": facts.to_dict(),
        # an emulated device (ro.facelm.emulated): real numerics, timings that are no phone's
        "emulated": facts.emulated,
        "artifact": {"name": target.name, "path": str(target.path), "sha256": target.sha256, "size": target.size,
                     "manifest": str(target.manifest_dir) if target.manifest_dir else None,
                     "integrity": target.integrity},
        "options": options.record_dict(), "latency_ms": None, "memory_mb": None,
        "thermal": {"before": None, "after": None}, "drift_vs_host": None, "notes": [],
    }


def run_one(runner, target: Target, options: BenchOptions, drift_source: str = SYNTHETIC_DRIFT_SOURCE) -> dict:
    """Benchmark (and optionally measure drift of) one target; return its record.

    A crashing binary gives a record with status "failed"; transport failures
    (device lost, timeout, storage full) raise.
    """
    r = _record(runner, target, options)
    r["thermal"]["before"] = runner.thermal().to_dict()
    try:
        handle = runner.prepare(target.path, target.sha256)
        m = runner.benchmark(handle, list(target.inputs)) if target.fmt == "tvm_so" else runner.benchmark(handle)
        r["latency_ms"], r["memory_mb"], r["notes"] = m.latency, m.memory, m.notes
        if options.drift:
            r["drift_vs_host"] = measure_drift(runner, handle, target, options, drift_source)
    except BinaryCrashError as exc:
        r.update(status="failed", error=str(exc), stderr_tail=exc.stderr)
    r["thermal"]["after"] = runner.thermal().to_dict()
    return r


def measure_drift(runner, handle, target: Target, options: BenchOptions, source: str) -> dict:
    """Drift of ``target`` on ``runner`` against the host fp32 reference."""
    if target.manifest_dir is None:
        raise InputError(f"--drift needs the artifact folder's manifest.json; {target.path} has none "
                         "(third-party models can be benchmarked, but not compared)")
    from .drift import plan_drift

    plan = plan_drift(target.manifest_dir, target.entry, options.drift_samples, source)
    if target.fmt == "tvm_so":
        inputs, outputs = list(target.inputs), list(target.outputs)
    else:
        inputs, outputs = tflite_io(target.path)
    outs = runner.outputs(handle, inputs, outputs, plan.samples(inputs))
    return plan.evaluate(outs, outputs)


class Runners:
    """The runners of one device, made (and set up) on first use, one per artifact format."""

    def __init__(self, serial: str, makers: dict):
        self.serial = serial
        self._makers = makers
        self._live: dict = {}

    def get(self, fmt: str):
        if fmt not in self._live:
            if fmt not in self._makers:
                raise InputError(f"no runner for {fmt} artifacts here (TVM on a phone needs --tvm-rpc)")
            runner = self._makers[fmt]()
            self._live[fmt] = runner
            runner.setup()
        return self._live[fmt]

    def close(self) -> None:
        for runner in self._live.values():
            try:
                runner.close()
            except FacelmError as exc:  # cleanup on a lost device
                log.warning("cleanup on %s failed: %s", self.serial, exc)


def run_device(runners: Runners, targets: list[Target], options: BenchOptions, results: Path | None,
               done: set, drift_source: str = SYNTHETIC_DRIFT_SOURCE, position: int = 0) -> tuple[list, int]:
    """All targets on one device, one at a time. Returns (records, skipped)."""
    from tqdm import tqdm

    out, skipped = [], 0
    try:
        for target in tqdm(targets, desc=f"bench {runners.serial}", position=position, leave=False,
                           unit="model", disable=None):
            key = (runners.serial, target.sha256, _options_key(options))
            if key in done:
                skipped += 1
                continue
            r = run_one(runners.get(target.fmt), target, options, drift_source)
            if results is not None:
                rec.append_record(results, r)
            out.append(r)
    finally:
        runners.close()
    return out, skipped


def _options_key(options: BenchOptions) -> str:
    import json

    return json.dumps(options.record_dict(), sort_keys=True)


def choose_devices(adb: Adb, serials: list[str], all_devices: bool) -> list[str]:
    """Explicit serials (each checked), all usable devices, or the single selected one."""
    if all_devices:
        entries = adb.devices()
        usable = [e.serial for e in entries if e.usable]
        if not usable:
            raise NoDeviceError("no usable device attached" + (
                ": " + ", ".join(f"{e.serial} ({e.state})" for e in entries) if entries else ""))
        return usable
    if serials:
        return [adb.select(s) for s in dict.fromkeys(serials)]
    return [adb.select()]


@dataclass
class BenchPlan:
    """What :func:`plan_bench` decided: where, which targets, what to tell the user, what to skip.

    Attributes:
        local: benchmark on this host (else on devices over adb).
        targets: the artifacts to run, in order.
        notes: one line each for the user (native code not loaded, unverified files).
        backend_note: why this host was chosen, when nobody asked for it.
        done: run keys already in the results file (``resume``).
    """

    local: bool
    targets: list[Target]
    notes: list[str] = field(default_factory=list)
    backend_note: str = ""
    done: set = field(default_factory=set)


def resolve_backend(request: BenchRequest, adb: Adb | None = None) -> tuple[bool, str]:
    """(local, note): ``request.local``, or this host when no device is attached and none was asked for."""
    if request.local is not None:
        return request.local, ""
    local = _no_device_attached(adb, request.serials, request.all_devices)
    return local, ("no device attached: benchmarking on this host (local backend, ai-edge-litert)" if local else "")


def _select_targets(request: BenchRequest, local: bool) -> tuple[list[Target], list[str]]:
    """(targets, notes): the artifacts of ``request.path`` this backend can load and may run
    (native code only when allowed, see :data:`NATIVE_CODE_WHY`)."""
    want_tvm = request.tvm_rpc is not None or (local and _have_tvm())
    artifacts = list(request.artifacts) if request.artifacts else None
    targets = resolve_targets(request.path, artifacts, ("tflite", "tvm_so") if want_tvm else ("tflite",))
    if not artifacts:  # this host loads only host TVM libraries (not linux-arm64 or Android ones), a phone Android ones
        targets = [t for t in targets if t.fmt != "tvm_so" or t.platform == ("host" if local else "android-arm64")]
    targets, native = split_native(targets, request.allow_native_code, artifacts)
    notes = []
    if native:
        names = ", ".join(f"{t.name} ({t.path.name})" for t in native)
        notes.append(f"not loading native code from {request.path}: {names}; {NATIVE_CODE_WHY}. Pass "
                     f"--allow-native-code (or name it with --artifact) to benchmark it")
    if not targets:
        raise InputError(f"nothing to benchmark in {request.path} on {'this host' if local else 'the device'}"
                         + (f" ({notes[0]})" if notes else ""))
    unverified = [t.name for t in targets if t.integrity == UNVERIFIED]
    if unverified:
        notes.append(f"{UNVERIFIED}: {', '.join(unverified)} benchmarked as found (no manifest.json lists "
                     f"{'it' if len(unverified) == 1 else 'them'}; a corrupted or substituted file goes unnoticed)")
    return targets, notes


def plan_bench(request: BenchRequest, local: bool, backend_note: str = "") -> BenchPlan:
    """Check the request and choose its targets, before any device is touched.

    Raises:
        InputError: a ``results``/``json_out`` path that cannot be a file, nothing to benchmark, a
            model this host cannot load (local), ``--drift`` on a file no manifest lists.
    """
    for out, flag in ((request.results, "--results"), (request.json_out, "--json")):
        if out is not None:
            rec.check_output_path(out, flag)
    targets, notes = _select_targets(request, local)
    if local:
        from .runners import check_tflite_loadable

        for t in targets:
            if t.fmt == "tflite":
                check_tflite_loadable(t.path)
    if request.options.drift:
        plain = [t.name for t in targets if t.manifest_dir is None]
        if plain:
            raise InputError(f"--drift needs our manifest.json; {', '.join(plain)} has none")
    done: set = set()
    if request.resume and request.results is not None and request.results.exists():
        done = {rec.run_key(r) for r in rec.read_records(request.results) if r.get("status") in ("ok", "failed")}
    return BenchPlan(local, targets, notes, backend_note, done)


def _run_local(plan: BenchPlan, request: BenchRequest, result: BenchResult) -> None:
    from .tvm_runners import LocalTvmRunner

    options = request.options
    runners = Runners("local", {"tflite": lambda: LocalTfliteRunner(options),
                                "tvm_so": lambda: LocalTvmRunner(options)})
    result.records, result.skipped = run_device(runners, plan.targets, options, request.results, plan.done,
                                                request.drift_source)


def _device_makers(adb: Adb, serial: str, request: BenchRequest) -> dict:
    """Artifact format -> runner factory on one device (TVM only with ``tvm_rpc``)."""
    from .tvm_runners import TvmRpcRunner

    options = request.options
    makers = {"tflite": lambda: BenchmarkModelRunner(adb, serial, options)}
    if request.tvm_rpc is not None:
        makers["tvm_so"] = lambda: TvmRpcRunner(adb, serial, options, request.tvm_rpc, request.tvm_port)
    return makers


def _run_devices(plan: BenchPlan, request: BenchRequest, adb: Adb | None, result: BenchResult) -> None:
    """Every device in parallel (one thread each); a device's failure is kept in ``result.errors``."""
    adb = adb or Adb(timeout_s=request.options.timeout_s)
    adb.start_server()
    devices = choose_devices(adb, list(request.serials), request.all_devices)
    lock = threading.Lock()

    def worker(i: int, serial: str) -> None:
        try:
            recs, skipped = run_device(Runners(serial, _device_makers(adb, serial, request)), plan.targets,
                                       request.options, request.results, plan.done, request.drift_source, position=i)
            with lock:
                result.records.extend(recs)
                result.skipped += skipped
        except FacelmError as exc:
            with lock:
                result.errors[serial] = exc

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="bench") as pool:
        for f in [pool.submit(worker, i, s) for i, s in enumerate(devices)]:
            f.result()


def run_plan(plan: BenchPlan, request: BenchRequest, adb: Adb | None = None) -> BenchResult:
    """Run a plan on this host or on the devices; write ``json_out``.

    Raises:
        DeviceError: after all devices finished, if any failed (``err.result`` holds the
            :class:`BenchResult`; finished runs are kept in ``results``).
    """
    result = BenchResult(backend_note=plan.backend_note, notes=list(plan.notes))
    if plan.local:
        _run_local(plan, request, result)
    else:
        _run_devices(plan, request, adb, result)
    if request.json_out is not None:
        rec.write_records(request.json_out, result.records)
    if result.errors:
        lines = [f"{s}: {e}" for s, e in result.errors.items()]
        hint = " Finished runs are kept; rerun with --resume to continue." if request.results is not None else ""
        err = DeviceError("; ".join(lines) + hint)
        err.result = result
        raise err
    return result


def bench(request: BenchRequest | str | os.PathLike, options: BenchOptions | None = None, *,
          adb: Adb | None = None, **fields: Any) -> BenchResult:
    """Benchmark a .tflite or an artifact folder on devices or on this host: resolve the backend
    (:func:`resolve_backend`), plan (:func:`plan_bench`), run (:func:`run_plan`).

    Example::

        res = facelm.bench("artifacts", facelm.BenchOptions(runs=20), local=True, results=None)
        res = facelm.bench(facelm.BenchRequest("artifacts", serials=("R58M123",), resume=True))
        [(r["artifact"]["name"], r["latency_ms"]["median"]) for r in res.records]

    Args:
        request: a :class:`BenchRequest`, or its ``path`` (then ``options`` and ``fields``, the
            other :class:`BenchRequest` fields, complete it).
        adb: the adb client to use (default: ``adb`` on PATH).
    Raises:
        ConfigError: a :class:`BenchRequest` given together with ``options`` or fields, or an unknown field.
        InputError: see :func:`plan_bench`.
        DeviceError: see :func:`run_plan`.
    """
    if isinstance(request, BenchRequest):
        if options is not None or fields:
            raise ConfigError("bench(): pass a BenchRequest alone, or a path with options and request fields")
    else:
        known = {f.name for f in dataclasses.fields(BenchRequest)} - {"path", "options"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(f"bench(): unknown argument {unknown[0]!r} (BenchRequest fields: {', '.join(sorted(known))})")
        request = BenchRequest(Path(request), options if options is not None else BenchOptions(), **fields)
    local, note = resolve_backend(request, adb)
    return run_plan(plan_bench(request, local, note), request, adb)


def _have_tvm() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tvm") is not None
    except ImportError:  # an import hook that forbids TVM (the light-path test) says "not installed"
        return False


def _no_device_attached(adb: Adb | None, serials, all_devices) -> bool:
    if serials or all_devices or os.environ.get("ANDROID_SERIAL"):
        return False
    try:
        a = adb or Adb(timeout_s=20)
        return not a.devices()
    except DeviceError as exc:  # no adb, or its server cannot start
        log.info("adb unavailable (%s)", exc)
        return True

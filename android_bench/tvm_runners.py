"""TVM runners: a phone through ``tvm_rpc`` + ``adb forward``, and the host ``.so``.

Both time ``main`` of a relax VM with ``time_evaluator`` (one sample per run, so
median/p90/p99 are per-run) and fetch outputs for drift. TVM artifacts do not
describe their tensors, so the input/output specs come from the manifest entry.
"""
from __future__ import annotations

import logging
import socket
import statistics
import time
from pathlib import Path

import numpy as np

from facelm.errors import DeviceError, InputError
from facelm.runtime.manifest import TensorSpec

from . import device as dev
from .adb import Adb, quote
from .config import BenchOptions
from .records import latency_stats
from .runners import Measurement, host_facts
from .transfer import RemoteFiles

log = logging.getLogger(__name__)


def _import_tvm():
    from facelm.runtime.tvm import import_tvm

    tvm = import_tvm()
    from tvm import relax, rpc

    return tvm, relax, rpc


def _random_inputs(inputs: list[TensorSpec]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, size=i.shape).astype(i.dtype) for i in inputs]


def _time_vm(tvm, vm, device, inputs: list[np.ndarray], opt: BenchOptions, t_load_ms: float) -> Measurement:
    """Warmup, then ``runs`` timed runs of ``main`` (stateful API, works over RPC)."""
    args = [tvm.runtime.tensor(x, device) for x in inputs]
    vm.set_input("main", *args)
    t0 = time.perf_counter()
    vm.invoke_stateful("main")
    device.sync()
    first_ms = (time.perf_counter() - t0) * 1e3
    warm = []
    for _ in range(opt.warmup):
        t = time.perf_counter()
        vm.invoke_stateful("main")
        device.sync()
        warm.append((time.perf_counter() - t) * 1e3)
    res = vm.time_evaluator("invoke_stateful", device, number=1, repeat=opt.runs)("main")
    samples = [float(r) * 1e3 for r in res.results]
    lat = latency_stats(samples)
    lat.update(init=t_load_ms, first=first_ms, warmup_mean=statistics.fmean(warm) if warm else None, basis="per-run")
    return Measurement(lat, {"init": None, "overall": None, "peak": None})


def _outputs(tvm, vm, device, samples: list[list[bytes]], inputs: list[TensorSpec]) -> list[list[np.ndarray]]:
    results = []
    for sample in samples:
        arrays = [np.frombuffer(b, dtype=i.dtype).reshape(i.shape) for b, i in zip(sample, inputs)]
        vm.set_input("main", *[tvm.runtime.tensor(a, device) for a in arrays])
        vm.invoke_stateful("main")
        out = vm.get_outputs("main")
        outs = [out] if hasattr(out, "numpy") else list(out)
        results.append([o.numpy() for o in outs])
    return results


class _RelaxVmRunner:
    """Timing and outputs of a relax VM; subclasses say where the module and device come from."""

    def _load(self, ref):
        """``(module, device)`` for an artifact reference (host path or uploaded name)."""
        raise NotImplementedError

    def _vm(self, ref):
        t0 = time.perf_counter()
        module, device = self._load(ref)
        vm = self.relax.VirtualMachine(module, device)
        return vm, device, (time.perf_counter() - t0) * 1e3

    def benchmark(self, ref, inputs: list[TensorSpec]) -> Measurement:
        vm, device, load_ms = self._vm(ref)
        return _time_vm(self.tvm, vm, device, _random_inputs(inputs), self.opt, load_ms)

    def outputs(self, ref, inputs: list[TensorSpec], outputs: list[TensorSpec],
                samples: list[list[bytes]]) -> list[list[np.ndarray]]:
        vm, device, _ = self._vm(ref)
        return _outputs(self.tvm, vm, device, samples, inputs)


class LocalTvmRunner(_RelaxVmRunner):
    """A TVM host ``.so`` (``facelm convert`` ``tvm_host``) with the TVM runtime on this machine."""

    backend = "local-tvm"

    def __init__(self, options: BenchOptions):
        self.opt = options
        self.tvm, self.relax, _ = _import_tvm()
        self._facts = None

    def facts(self):
        if self._facts is None:
            self._facts = host_facts()
        return self._facts

    def thermal(self):
        return dev.Thermal()

    def setup(self) -> None:
        pass

    def prepare(self, path: Path, sha256: str | None = None) -> Path:
        return Path(path)

    def _load(self, path: Path):
        return self.tvm.runtime.load_module(str(path)), self.tvm.cpu()

    def close(self) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TvmRpcRunner(_RelaxVmRunner):
    """TVM on a phone: ``tvm_rpc`` started through ``adb shell``, reached through ``adb forward``.

    Args:
        tvm_rpc: a host file to push, or the device path of ``tvm_rpc``.
        device_port: the port the server listens on, on the device.
    """

    backend = "tvm-rpc"

    def __init__(self, adb: Adb, serial: str, options: BenchOptions, tvm_rpc: str, device_port: int = 9090,
                 connect_timeout_s: float = 60.0):
        self.adb = adb
        self.serial = serial
        self.opt = options
        self.tvm_rpc = tvm_rpc
        self.device_port = device_port
        self.connect_timeout_s = connect_timeout_s
        self.tvm, self.relax, self.rpc = _import_tvm()
        self.files = RemoteFiles(adb, serial, options.workdir, keep=options.keep, timeout_s=options.timeout_s)
        self._facts = None
        self._remote = None
        self._host_port = None
        self._pidfile = None

    def facts(self):
        if self._facts is None:
            self._facts = dev.read_facts(self.adb, self.serial, timeout_s=self.opt.timeout_s)
        return self._facts

    def thermal(self):
        return dev.read_thermal(self.adb, self.serial, timeout_s=self.opt.timeout_s)

    def _binary(self) -> str:
        local = Path(self.tvm_rpc).expanduser()
        if local.is_file():
            remote = self.files.push(local, name="tvm_rpc")
            self.adb.shell(self.serial, f"chmod 755 {quote(remote)}", timeout_s=self.opt.timeout_s, check=True)
            return remote
        if not self.tvm_rpc.startswith("/"):
            raise ConfigError(f"tvm_rpc {self.tvm_rpc!r} is neither a host file nor an absolute device path")
        res = self.adb.shell(self.serial, f"[ -x {quote(self.tvm_rpc)} ] && echo ok", timeout_s=self.opt.timeout_s)
        if res.stdout.strip() != "ok":
            raise ConfigError(f"no executable tvm_rpc at {self.tvm_rpc} on {self.serial} (see docs/android.md)")
        return self.tvm_rpc

    def setup(self) -> None:
        """Start the server in the background, forward a host port to it and connect."""
        self.facts()
        self.files.ensure_workdir()
        binary = self._binary()
        wd = self.opt.workdir
        self._pidfile = self.files.track(f"{wd}/tvm_rpc.pid")
        logfile = self.files.track(f"{wd}/tvm_rpc.log")
        mask = self.facts().big_core_mask
        taskset = f"taskset {mask} " if self.opt.pin_big_cores and mask else ""
        p = self.device_port
        cmd = (f"cd {quote(wd)} && ({taskset}{quote(binary)} server --host=127.0.0.1 --port={p} "
               f"--port-end={p + 1} > {quote(logfile)} 2>&1 < /dev/null & echo $! > {quote(self._pidfile)})")
        self.adb.shell(self.serial, cmd, timeout_s=self.opt.timeout_s, check=True)
        self._host_port = _free_port()
        self.adb.forward(self.serial, f"tcp:{self._host_port}", f"tcp:{p}")
        deadline = time.monotonic() + self.connect_timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                self._remote = self.rpc.connect("127.0.0.1", self._host_port, session_timeout=0)
                return
            except Exception as exc:  # server still starting: the forward accepts, then closes
                last = exc
                time.sleep(0.5)
        log_tail = self.adb.shell(self.serial, f"tail -n 20 {quote(logfile)}", timeout_s=self.opt.timeout_s).stdout
        raise DeviceError(f"could not reach tvm_rpc on {self.serial} port {p}: {last}\n{log_tail}")

    def prepare(self, path: Path, sha256: str | None = None) -> str:
        from .transfer import remote_name
        from facelm.fileio import sha256_file

        name = remote_name(sha256 or sha256_file(path), Path(path).name)
        self._remote.upload(str(path), target=name)
        return name

    def _load(self, name: str):
        return self._remote.load_module(name), self._remote.cpu()

    def close(self) -> None:
        """Stop the server, remove the forward and the pushed files."""
        self._remote = None
        try:
            if self._host_port is not None:
                self.adb.forward_remove(self.serial, f"tcp:{self._host_port}")
            if self._pidfile is not None:
                self.adb.shell(self.serial, f"kill $(cat {quote(self._pidfile)}) 2>/dev/null; true",
                               timeout_s=self.opt.timeout_s)
        finally:
            self.files.cleanup()


def tensor_specs(spec: TensorSpec | None) -> list[TensorSpec]:
    """A manifest TensorSpec as the one-element list the runners take."""
    if spec is None:
        raise InputError("a TVM artifact needs input/output specs in the manifest")
    return [spec]

# Two commands for a fresh machine: `make demo` and `make test`.
# Each one creates .venv (Python 3.11) and installs the package with every extra.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facelm-installed
# The C twin of the DARK decoder: rebuilt whenever a source or header changes (e.g. after
# `git pull`), so `make test` never tests a stale _cdark.
CSRC   := $(wildcard sdk/codec/csrc/*.c sdk/codec/csrc/*.h)
CEXT   := $(VENV)/.facelm-cext

.PHONY: test demo venv clean arm64 realfaces

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (facelm needs Python 3.11)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23" "setuptools>=68" wheel
	$(PY) -m pip install -e ".[all]"
	# tvm_int8 reads int8.tflite with TVM's relax TFLite frontend, which needs the flatbuffer
	# package `tflite`; its metadata pins a TensorFlow that clashes with onnx2tf's, hence --no-deps.
	$(PY) -m pip install --no-deps "tflite==2.18.0"
	touch $(STAMP)

# setuptools does not track the header, and skips an extension that is newer than its .c
# files, so the old module is removed first; the editable reinstall then rebuilds it in place.
$(CEXT): $(STAMP) $(CSRC)
	rm -f sdk/codec/_cdark.*.so
	$(PY) -m pip install -e . --no-deps --no-build-isolation -q
	touch $(CEXT)

venv: $(CEXT)

# The real-face photos that ship inside PyPI sdists (face_recognition, insightface), fetched once
# with pip into ~/.cache/facelm/real_faces and checked against their sha256 (docs/real_faces.md).
realfaces: $(STAMP)
	$(PY) -m facelm.data.real_faces fetch

test: $(CEXT) realfaces
	$(PY) -m pytest -q

# Convert the shipped demo checkpoint into ./artifacts/ (see README, "Conversion").
demo: $(CEXT) realfaces
	$(VENV)/bin/facelm convert

# The aarch64 runtime (python, numpy, LiteRT, TVM) that runs artifacts and the C codec under
# qemu-user: ~/.cache/facelm/arm64, or $$FACELM_ARM64_ROOT. Cached; minutes once. Needs the apt
# packages qemu-user gcc-aarch64-linux-gnu g++-aarch64-linux-gnu (see .ci/run).
arm64: $(STAMP)
	$(PY) -m facelm.cli arm64 setup

clean:
	rm -rf $(VENV) build *.egg-info artifacts

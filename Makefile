# Two commands for a fresh machine: `make demo` and `make test`.
# Each one creates .venv (Python 3.11) and installs the package with every extra.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facelm-installed

.PHONY: test demo venv clean

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (facelm needs Python 3.11)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23" "setuptools>=68" wheel
	$(PY) -m pip install -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Convert the shipped demo checkpoint into ./artifacts/ (see README, "Conversion").
demo: $(STAMP)
	$(VENV)/bin/facelm convert

clean:
	rm -rf $(VENV) build *.egg-info artifacts

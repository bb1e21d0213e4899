# The README's two commands: `make demo` (main job) and `make test` (whole suite).
# Each creates .venv at the repo root if missing and installs the project into it (with uv, from PyPI:
# the 3 GB of torch's wheels install in well under a minute instead of about three with pip), every
# package at the version requirements.lock pins (`make lock` re-resolves it from pyproject.toml): the
# README's numbers were measured in that environment, and a newer release of a dependency changes them.
# The lock is for Linux x86-64 and CPython 3.11; elsewhere install by hand (README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.symnb-installed

.PHONY: venv lock demo test lint strip clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	{ $(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock -e ".[dev]"; } \
		|| { echo "uv failed: installing with pip (slower)"; $(PY) -m pip install --quiet -r requirements.lock -e ".[dev]"; }
	$(PY) -c "import symnb, pytorch3d; from pytorch3d import _C"
	@touch $(STAMP)

lock: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra dev --python $(PY) -o requirements.lock

demo: $(STAMP)
	$(PY) -m symnb.demo --jobs 2 $(ARGS)

# pytest-xdist: one worker per core, each test file (and its module fixtures) on one worker, the files
# in tests/conftest.py's order (slow ones first; xdist's own reorder, by test count, would put them
# last); one thread per worker (conftest sets the tests' share; the nbval kernels get OMP_NUM_THREADS)
XDIST := -n auto --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)
	OMP_NUM_THREADS=1 $(PY) -m pytest $(XDIST) --nbval-lax --nbval-current-env -p no:cacheprovider build/nb/*.ipynb

lint: $(STAMP)
	$(PY) -m ruff check .

strip: $(STAMP)
	$(PY) -m symnb.nbtools strip nbs/*.ipynb

clean:
	rm -rf build results

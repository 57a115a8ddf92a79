# advlab: one-command entry points. Each target creates the venv and installs on first use.
#   make install      .venv-$(TF) with advlab[$(TF),dev], pinned by this platform's lock file
#   make test         unit tests + every notebook under nbmake, at smoke scale
#   make test-latest  the same tests in .venv-$(TF)-latest with the newest releases (no lock)
#   make tour         run every notebook top to bottom at smoke scale; executed copies in build/tour
#   make lab          open JupyterLab on the course
#   make student      the student edition (solutions stubbed, answers dropped) in build/student
#   make lock         rewrite this platform's lock file from $(VENV)'s versions
# Variables: PYTHON (interpreter for the venv), TF (cpu | tf | gpu: which TensorFlow wheel),
#            VENV (default .venv-$(TF): one per flavour, the wheels clash in one environment),
#            CONSTRAINTS (lock file; empty: none), ADVLAB_SCALE (smoke | full), OUT (tour folder),
#            WORKERS (pytest-xdist processes for make test/unit/notebooks; 0: one process).
PYTHON ?= python3
TF     ?= cpu
VENV   ?= .venv-$(TF)
OUT    ?= build/tour
# Two test processes: a serial run kept 1.15 of the 2 CI cores busy (kernel start-up, imports and
# graph tracing are single-threaded). Cache entries are file-locked, so workers never build one twice.
WORKERS ?= 2
PYTEST  = $(BIN)/python -m pytest -p no:cacheprovider -n $(WORKERS) --dist worksteal
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.advlab-installed
# requirements/<platform>-py<X.Y>-<TF>.txt pins every package of one tested install; it is used
# where it exists for $(PYTHON)'s platform and this flavour, elsewhere the newest releases are.
PLATFORM    := $(shell $(PYTHON) scripts/check_python.py --platform-tag 2>/dev/null)
LOCK        := requirements/$(PLATFORM)-$(TF).txt
CONSTRAINTS ?= $(wildcard $(LOCK))
export ADVLAB_SCALE ?= smoke
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2

ifeq ($(filter $(TF),cpu tf gpu),)
$(error TF must be cpu, tf or gpu (got '$(TF)'))
endif

.PHONY: install check-python test test-latest unit notebooks tour lab bench gpu-check lock clean

check-python:
	@command -v $(PYTHON) >/dev/null || { echo "advlab: no '$(PYTHON)' on PATH; give one, e.g. make PYTHON=python3.11"; exit 1; }
	@$(PYTHON) scripts/check_python.py

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(MAKE) --no-print-directory check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[advlab] installing advlab[$(TF),dev] into $(VENV): $(if $(CONSTRAINTS),versions from $(CONSTRAINTS),newest releases (no lock file $(LOCK)))"
	$(BIN)/python -m pip install --quiet $(UPGRADE) $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[$(TF),dev]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PYTEST) --nbmake --nbmake-timeout=1200 tests notebooks

# A fresh resolution every time: what a user installing today gets. When it passes, `make lock
# VENV=.venv-$(TF)-latest` moves the lock file to these versions.
test-latest:
	rm -f $(VENV)-latest/.advlab-installed
	$(MAKE) --no-print-directory test VENV=$(VENV)-latest CONSTRAINTS= UPGRADE="--upgrade --upgrade-strategy eager"

unit: $(STAMP)
	$(PYTEST) tests

notebooks: $(STAMP)
	$(PYTEST) --nbmake --nbmake-timeout=1200 notebooks

tour: $(STAMP)
	$(BIN)/python scripts/tour.py --scale $(ADVLAB_SCALE) --out $(OUT)

student: $(STAMP)
	$(BIN)/python scripts/student_edition.py --out build/student

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

# gpu_check.py is for a GPU machine (hours of paper-width steps on a CPU): make gpu-check
bench: $(STAMP)
	for b in benchmarks/[!_]*.py; do case $$b in */gpu_check.py) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

# Not through $(STAMP): that would first reinstall the venv from the old lock file.
lock:
	@test -x $(BIN)/python || { echo "advlab: no $(VENV) to lock; run make install or make test-latest first"; exit 1; }
	$(BIN)/python scripts/make_lock.py --extras $(TF),dev

clean:
	rm -rf build .cache

# advlab: one-command entry points. Each target creates .venv and installs on first use.
#   make test   unit tests + every notebook under nbmake, at smoke scale
#   make tour   run every notebook top to bottom at smoke scale; executed copies in build/tour
#   make lab    open JupyterLab on the course
#   make student  write the student edition (solutions stubbed, answers dropped) to build/student
# Variables: PYTHON (interpreter for the venv), TF (cpu | tf | gpu: which TensorFlow wheel),
#            ADVLAB_SCALE (smoke | full), OUT (tour output folder).
PYTHON ?= python3
VENV   ?= .venv
TF     ?= cpu
OUT    ?= build/tour
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.advlab-installed-$(TF)
export ADVLAB_SCALE ?= smoke
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test unit notebooks tour lab bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(TF),dev]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --nbmake --nbmake-timeout=1200 tests notebooks

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests

notebooks: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --nbmake --nbmake-timeout=1200 notebooks

tour: $(STAMP)
	$(BIN)/python scripts/tour.py --scale $(ADVLAB_SCALE) --out $(OUT)

student: $(STAMP)
	$(BIN)/python scripts/student_edition.py --out build/student

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build .cache

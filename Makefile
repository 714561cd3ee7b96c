# Two commands for a fresh machine (README "Quickstart"):
#   make lab    set up .venv and open the labs in JupyterLab
#   make test   set up .venv and run every test: unit tests, strict nbval on the labs, the browser suite
# Others: make student-edition (the labs with solutions cleared, into student/), make notebooks
# (re-execute and save every lab), make data (retrain checkpoints), make site (the website), make bench-labs,
# make bench-widgets.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned. On Linux the package index's torch wheel is the CUDA build (GBs of CUDA libraries);
# a laptop without a GPU gets the small CPU wheel from PyTorch's own index with
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# A CUDA machine keeps the default (or names its CUDA index, e.g. .../whl/cu126). CI uses the default.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: setup setup-test lab test student-edition notebooks data bench-widgets bench-labs site clean

setup: $(VENV)/.installed-lab
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) "$(TORCH)"
	touch $@

# students: the labs and what they import
$(VENV)/.installed-lab: pyproject.toml $(VENV)/.installed-torch
	$(PIP) -e ".[lab]"
	touch $@

# instructors and CI: + pytest, nbval, Playwright, nbgrader (the student edition), Sphinx (the website)
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-lab
	$(PIP) -e ".[lab,test,instructor,site]"
	touch $@

# JupyterLab refuses to run as root unless told (containers, cloud shells): allow it there.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab labs/ $(ROOT_FLAG)

test: setup-test
	$(BIN)/python -m pytest tests labs --nbval -q -n 2 --dist loadscope --no-loadscope-reorder --ignore=tests/browser
	$(BIN)/python -m pytest tests/browser -q -rs -n 2 --dist load

student-edition: setup-test
	$(BIN)/course-kit student-edition student --force

notebooks: setup-test
	$(BIN)/python -m course_kit.notebooks labs/*.ipynb

data: setup
	$(BIN)/course-kit build-data --all

# the course as a website from the labs' stored outputs (no execution): site_build/html/index.html
site: setup-test
	$(BIN)/python -m course_kit.site site_build

# each lab's compute per cell, core-path words and slowest cell, as JSON (re-executes the labs)
bench-labs: setup-test
	$(BIN)/python scripts/bench_labs.py

bench-widgets: setup-test
	$(BIN)/python scripts/bench_widgets.py

clean:
	rm -rf $(VENV) runs site_build

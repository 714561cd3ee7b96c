# Two commands for a fresh machine (README "Quickstart"):
#   make lab    set up .venv and open the labs in JupyterLab
#   make test   set up .venv and run every test, strict nbval on the labs included
# Others: make setup, make notebooks (re-execute and save every lab), make data (retrain checkpoints).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch. Override on a GPU machine: make lab TORCH="torch==2.13.0" (any CUDA build).
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1

.PHONY: setup lab test notebooks data clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[lab,test]"
	touch $@

# JupyterLab refuses to run as root unless told (containers, cloud shells): allow it there.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab labs/ $(ROOT_FLAG)

test: setup
	$(BIN)/python -m pytest tests labs --nbval -q -n 2 --dist loadscope

notebooks: setup
	$(BIN)/python -m course_kit.notebooks labs/*.ipynb

data: setup
	$(BIN)/course-kit build-data --all

clean:
	rm -rf $(VENV) runs

# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
HOME_DIR ?= var/home
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export BENTOML_DO_NOT_TRACK := true
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision are pinned; pip takes both from this machine's disk (no multi-GB download)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[train,test]"
	touch $(STAMP)

install: $(STAMP)

# install, load the shipped default model, seed a demo registry of real brands into var/, print held-out metrics, serve
run: install
	$(PY) -m detector.cli demo --home $(HOME_DIR) --serve --port $(PORT)

# the same without serving
demo: install
	$(PY) -m detector.cli demo --home $(HOME_DIR)

test: install
	$(PY) -m pytest -q --durations=25 tests notebooks --nbmake

clean:
	rm -rf $(VENV) var

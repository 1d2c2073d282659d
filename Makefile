# synmag: the two commands a newcomer needs are `make run` and `make test`.
# Both install what they need into .venv first (torch==2.13.0 before the project:
# without the pin pip would pull a newer torch with GBs of CUDA).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA_DIR ?= ../shared/data/ha2mag
TRAIN_CONFIG ?= training/configs/paper.toml
PYTEST_ARGS ?=

.PHONY: install run test bench retrain lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,train,test]'
	touch $(STAMP)

run: install
	$(BIN)/synmag serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

retrain: install
	$(BIN)/synmag-train retrain --data-dir $(DATA_DIR) --config $(TRAIN_CONFIG)

lint: install
	$(BIN)/ruff check service training tests bench migrations

clean:
	rm -rf $(VENV) var .pytest_cache

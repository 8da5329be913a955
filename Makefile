# Everything runs from the virtual environment in .venv/, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Set up, migrate the SQLite database under instance/, seed the demo on first run (it prints
## the demo users' passwords), start the app on 127.0.0.1:5000.
run: install
	$(BIN)/mdfledger db upgrade
	$(BIN)/mdfledger demo --if-empty
	$(BIN)/mdfledger serve --host 127.0.0.1 --port 5000

## Lint, then the whole suite (PostgreSQL tests run when MDFLEDGER_TEST_POSTGRES_URL is set).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Ledger, claims-queue and payout/event benchmarks on SQLite, and on PostgreSQL when
## MDFLEDGER_BENCH_POSTGRES_URL is set; invoice OCR (needs tesseract-ocr) and page checks
## (figures in docs/benchmarks.md).
bench: install
	$(BIN)/mdfledger bench ledger
	$(BIN)/mdfledger bench queue
	OMP_THREAD_LIMIT=1 $(BIN)/mdfledger bench ocr
	$(BIN)/mdfledger bench urls
	$(BIN)/mdfledger bench payouts
	$(BIN)/mdfledger bench exports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

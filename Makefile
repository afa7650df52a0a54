# The commands the README and CI use. Every target sets up what it needs itself.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The CDK's jsii runtime warns about Node versions it has not tested.
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
# (End-of-life warnings are silenced per major version: list the Node majors.)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: venv test lint format demo synth bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	touch $(STAMP)

## test: lint, then every test (starts its own emulator and simulated Grid)
test: lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## demo: a full reingestion pass on emulated AWS and a simulated Grid
demo: venv
	$(BIN)/python scripts/demo.py

## synth: CloudFormation for every stage, and the Lambda asset, into cdk.out (no AWS needed)
synth: venv
	$(BIN)/python -m infra.app

## bench: the side-by-side benchmarks; results go to docs/benchmarks.md
bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache

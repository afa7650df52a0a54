# The commands the README and CI use. Every target sets up what it needs itself.

# The Python of the functions' Lambda runtime (infra/asset.py's RUNTIME), and so of
# .venv: python<version> on the PATH or through pyenv, unless PYTHON names one.
PYTHON_VERSION := 3.13
PYTHON ?=
VENV := .venv
BIN := $(VENV)/bin
# Named for the version, so that a .venv made with another Python is made again.
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
DEV_LOCK := requirements/dev.txt
# The CDK CLI at package-lock.json's version (never a download of whatever is newest).
CDK := node_modules/.bin/cdk
CDK_STAMP := node_modules/.package-lock.json
STAGE ?= TEST
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS='tests/unit -x'`.
PYTEST_ARGS ?=
# pytest-xdist processes for make test: one a core (most tests wait on sockets and
# emulators; docs/infra.md gives the times); TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= auto

# The CDK's jsii runtime warns about Node versions it has not tested.
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
# (End-of-life warnings are silenced per major version: list the Node majors.)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: venv test test-fast typecheck lint lock lock-check format demo local local-env synth diff deploy node bench clean

venv: $(STAMP)

# Everything from the dev lock, each file checked against its hash (pip refuses
# anything unpinned or unhashed), then the project itself, editable and
# without dependencies: those all came from the lock.
$(STAMP): $(DEV_LOCK) pyproject.toml
	@sh requirements/venv.sh $(PYTHON_VERSION) $(VENV) '$(PYTHON)'
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## test: the locks checked against pyproject.toml, lint, then every test
# pytest's own exit code fails the target: 1 for a failed test, 5 when no test ran.
test: node lock-check lint typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## typecheck: mypy, strict on the core (domain, ports, flows, adapters); defaults on infra, scripts
typecheck: venv
	$(BIN)/mypy lambdas/grid_reingest/domain lambdas/grid_reingest/ports.py \
		lambdas/grid_reingest/flows lambdas/grid_reingest/adapters infra scripts

## test-fast: the unit tier without the whole-pass simulations (no sockets, seconds)
test-fast: venv
	$(BIN)/python -m pytest tests/unit -m "not simulation" -q $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lock: re-resolve requirements/*.txt from pyproject.toml, keeping pins it allows (UPGRADE=1: newest)
lock: venv
	$(BIN)/python requirements/lock.py $(if $(UPGRADE),--upgrade)

## lock-check: fail when a lock disagrees with pyproject.toml (no network)
lock-check: venv
	$(BIN)/python requirements/lock.py --check

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## demo: a whole pass with `reingest run` on emulated AWS and a simulated Grid, then its failures
# Options for the demo, e.g. `make demo DEMO_ARGS='--ids 1000 --mix 0.1'` (see --help).
DEMO_ARGS ?=
demo: venv
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

## local: a stage LOCAL on emulated AWS and a simulated Grid that stays up until Ctrl-C
# (run again while it is up: it says so and prints its environment lines)
LOCAL_ARGS ?=
local: venv
	$(BIN)/python -m devtools.local $(LOCAL_ARGS)

## local-env: the lines that point reingest at the local stage: eval "$$(make -s local-env)"
local-env: venv
	@$(BIN)/python -m devtools.local --env

## synth: CloudFormation for every stage, and the Lambda asset, into cdk.out (no AWS needed)
synth: node venv
	$(BIN)/python -m infra.app

## diff / deploy: STAGE's stack (default TEST) with the pinned CDK CLI; needs AWS credentials
diff: node venv $(CDK_STAMP)
	$(CDK) diff grid-reingest-$(STAGE)

deploy: node venv $(CDK_STAMP)
	$(CDK) deploy grid-reingest-$(STAGE)

$(CDK_STAMP): package.json package-lock.json | node
	npm ci --no-audit --no-fund

# The CDK (jsii) and its CLI run on Node.js.
node:
	@command -v node >/dev/null 2>&1 || { echo "node not found: install Node.js 20 (the CDK runs on it), then re-run make" >&2; exit 1; }

## bench: the side-by-side benchmarks; results go to docs/benchmarks.md
bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) node_modules cdk.out .cache .pytest_cache .ruff_cache .local

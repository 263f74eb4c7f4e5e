# The verbs a person types. Every target installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam

.PHONY: install dev test test-unit lint format build build-local requirements openapi schemas bench bench-timeouts bench-async bench-load deploy clean docker reap

$(STAMP): pyproject.toml clients/python/pyproject.toml
	bash scripts/ensure-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The client package (and its `sgw` command) is a dependency of the project found on no
	# registry: pip takes it from this path when both are named in one command.
	$(BIN)/python -m pip install --quiet -e ./clients/python -e ".[dev,local]"
	touch $(STAMP)

## install: the .venv with the service, its dev/local extras and the `sgw` command ($(BIN)/sgw)
install: $(STAMP)

## dev: run the whole service locally on http://127.0.0.1:3000
dev: $(STAMP)
	$(BIN)/python -m local.dev $(ARGS)

## test: every test suite (unit, integration, contract)
test: $(STAMP)
	$(BIN)/python -m pytest

## docker: a running engine and the Docker provider's sandbox image (built offline, cached)
docker:
	bash scripts/ensure-docker.sh

## reap: remove Docker sandboxes whose sessions have ended (a backstop for crashes)
reap: $(STAMP)
	$(BIN)/python -m local.docker_sandbox.reap

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/shared/sandbox_gateway
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python scripts/generate_layer_requirements.py --check
	$(BIN)/python scripts/generate_openapi.py --check
	$(BIN)/python scripts/generate_schemas.py --check

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## requirements: regenerate the layer's requirements.txt from pyproject.toml
requirements: $(STAMP)
	$(BIN)/python scripts/generate_layer_requirements.py

## openapi: regenerate openapi.json (the API's contract) from the routes
openapi: $(STAMP)
	$(BIN)/python scripts/generate_openapi.py

## schemas: regenerate schemas/*.schema.json (the message contracts) from their models
schemas: $(STAMP)
	$(BIN)/python scripts/generate_schemas.py

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli==1.170.0"

## build: sam build (the layer gets python3.13 wheels even on a 3.11 machine)
build: $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) build --template template.yaml

## build-local: sam build with docker-py in the layer, for `sam local` with the Docker provider
build-local: $(SAM)
	LAYER_EXTRAS="docker>=7,<8" SAM_CLI_TELEMETRY=0 $(SAM) build --template template.yaml

## deploy: first time `make deploy`, which runs the guided deploy and saves samconfig.toml
deploy: build
	$(SAM) deploy --guided

# The bench extra of pyproject.toml (matplotlib, for the chart), installed on first use; read from
# pyproject so the two cannot differ, and without reinstalling the project itself.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"], sep="\n")' \
		| $(BIN)/python -m pip install --quiet -r /dev/stdin
	touch $(BENCH_STAMP)

## bench: the figures of the local stack beside their baselines, one table, JSON and chart in benchmarks/results/ (ARGS="--repeat 20 ...")
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

## bench-timeouts: how soon after timeout_seconds a runaway cell is answered, per provider
bench-timeouts: $(STAMP)
	$(BIN)/python -m benchmarks.timeouts

## bench-async: async, queue and bus executions and Idempotency-Key replays against the sync execute
bench-async: $(STAMP)
	$(BIN)/python -m benchmarks.async_executions

## bench-load: N clients of several tenants for a bounded time; is the store the bottleneck? (ARGS="--clients 12 --tenants 3 --seconds 10")
bench-load: $(STAMP)
	$(BIN)/python -m benchmarks.load $(ARGS)

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache

# Herald's front door. `make demo` runs the system end to end; `make test` runs the
# whole suite. Both install what they need (a project-local Python venv with the
# moto emulator) and stop everything they start.

SHELL       := /bin/bash
VENV        := .venv
PY          := $(VENV)/bin/python
MOTO        := moto[server]==5.2.5
PORT        ?= 4566
STAGE       ?= local
CARGO       ?= cargo
export AWS_ACCESS_KEY_ID     ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION            ?= us-east-1
export AWS_DEFAULT_REGION    ?= us-east-1

.PHONY: all build venv up down status demo test lint fmt clean

all: build

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(MOTO)'
	touch $@

venv: $(VENV)/.installed

build:
	$(CARGO) build --workspace --bins

## up: start the emulator on 127.0.0.1:$(PORT) and deploy infra/data-plane.yaml (stage $(STAGE)).
up: venv
	$(PY) localstack/herald_local.py emulator-start --port $(PORT)
	AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) $(PY) localstack/herald_local.py up --stage $(STAGE) --env-file .run/$(STAGE).env
	@echo "Settings for the CLI and worker are in .run/$(STAGE).env (AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT))"

## down: stop the emulator started by `make up` (its state goes with it).
down:
	$(PY) localstack/herald_local.py emulator-stop --port $(PORT)

status: venv
	AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) $(PY) localstack/herald_local.py status --stage $(STAGE)

## demo: build, start a private emulator, register webhooks, publish, show deliveries, stop.
demo: venv build
	localstack/with-emulator scripts/demo.sh

## test: lint, unit tests, and end-to-end tests against a private emulator.
test: venv lint
	$(CARGO) build --workspace --bins
	localstack/with-emulator $(CARGO) test --workspace --no-fail-fast -- --show-output

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf $(VENV) .run target

# Herald's front door. `make demo` runs the system end to end; `make test` runs the
# whole suite. Both install what they need (a project-local Python venv with the
# moto emulator) and stop everything they start.

SHELL       := /bin/bash
VENV        := .venv
PY          := $(VENV)/bin/python
MOTO        := moto[server]==5.2.5
# The senders' own signing libraries, for the inbound webhook tests
# (crates/herald-cli/tests/it/inbound.rs): Stripe's, Standard Webhooks' and githubkit
# (a GitHub SDK; its cache dependency hishel is pinned to a release it imports).
SENDERS     := stripe==16.1.0 standardwebhooks==1.1.0 githubkit==0.16.1 hishel[async,httpx]==1.3.0
PORT        ?= 4566
STAGE       ?= local
CARGO       ?= cargo
# Lambda packaging and deployment (infra/README.md). cargo-lambda and cfn-lint go into
# the project venv; the AWS CLI into its own venv ($(VENV)/aws), since awscli pins a
# botocore that moto's boto3 does not accept.
CARGO_LAMBDA := cargo-lambda==1.9.2
CFN_LINT     := cfn-lint==1.58.0
AWSCLI       := awscli==1.46.3
CHECKOV      := checkov==3.3.30
LAMBDA_BINS  := herald-consumer-lambda herald-redriver-lambda herald-api-lambda herald-ingest-lambda
LAMBDA_ARCH  ?= x86_64
LAMBDA_DIR   ?= target/lambda
NAME_PREFIX  ?= herald
export AWS_ACCESS_KEY_ID     ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION            ?= us-east-1
export AWS_DEFAULT_REGION    ?= us-east-1

.PHONY: all build venv up down status demo dev test lint fmt clean browser
.PHONY: cargo-lambda lambda lambda-check cfn-lint checkov deploy undeploy

all: build

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(MOTO)'
	touch $@

$(VENV)/.senders: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(foreach p,$(SENDERS),'$(p)')
	touch $@

venv: $(VENV)/.installed $(VENV)/.senders

build:
	$(CARGO) build --workspace --bins

## up: start the emulator on 127.0.0.1:$(PORT) and deploy infra/data-plane.yaml (stage $(STAGE));
## the settings (HERALD_*, AWS_ENDPOINT_URL) go to .run/$(STAGE).env. Same as `herald up`.
up: venv
	$(CARGO) build --quiet -p herald-cli
	target/debug/herald up --port $(PORT) --stage $(STAGE) --env-file .run/$(STAGE).env

## down: stop the emulator started by `make up` (its state goes with it). Same as `herald down`.
down:
	$(CARGO) build --quiet -p herald-cli
	target/debug/herald down --port $(PORT) --stage $(STAGE)

## status: the emulator, the stack and the API. Same as `herald status`.
status: venv
	$(CARGO) build --quiet -p herald-cli
	target/debug/herald status --port $(PORT) --stage $(STAGE)

## demo: build, start a private emulator, register webhooks, publish, show deliveries, stop.
demo: venv build
	localstack/with-emulator scripts/demo.sh

## dev: start a private emulator, deploy the data plane, run the API with the web console
## and the worker; prints the console's URL and an admin key; Ctrl-C stops everything.
dev: venv
	$(CARGO) build --quiet -p herald-cli
	target/debug/herald dev

## test: lint, unit tests, and the integration suite against a private emulator; also
## lints the templates and packages the Lambda bootstraps from the same debug build the
## tests use (one build of the dependencies), which the Lambda tests run under
## cargo-lambda's Runtime API (crates/herald-cli/tests/it/lambda.rs).
test: export HERALD_LAMBDA_DIR := $(CURDIR)/target/lambda-debug
test: venv browser lint cfn-lint checkov lambda-check $(VENV)/.cargo-lambda
	localstack/with-emulator $(CARGO) test --workspace --no-fail-fast -- --show-output

## browser: install Debian's chromium and chromium-driver when missing (the web
## console's browser tests drive them over WebDriver); quiet when both are there.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian's chromium and chromium-driver for the console's browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } || { \
	    echo "could not install chromium and chromium-driver with apt-get: install them by hand (apt-get install chromium chromium-driver)" >&2; exit 1; }; fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

$(VENV)/.cargo-lambda: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(CARGO_LAMBDA)'
	touch $@

$(VENV)/.cfn-lint: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(CFN_LINT)'
	touch $@

# checkov pins its own dependencies (boto3 among them): a venv of its own, as the AWS CLI.
$(VENV)/checkov/.installed: Makefile
	python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check '$(CHECKOV)'
	touch $@

$(VENV)/aws/.installed: Makefile
	python3 -m venv $(VENV)/aws
	$(VENV)/aws/bin/pip install --quiet --disable-pip-version-check '$(AWSCLI)'
	touch $@

## cargo-lambda: install cargo-lambda (from PyPI, with zig for linking) into the venv.
cargo-lambda: $(VENV)/.cargo-lambda

## lambda: build target/lambda/<function>/bootstrap.zip for each Lambda function with
## cargo-lambda (release; LAMBDA_ARCH=arm64 on machines with that Rust target).
lambda: $(VENV)/.cargo-lambda
	cmd="$(CARGO) lambda build --release $(if $(filter arm64,$(LAMBDA_ARCH)),--arm64,--x86-64) --output-format zip --lambda-dir $(LAMBDA_DIR)$(foreach b,$(LAMBDA_BINS), --bin $(b))"; \
	echo "$$cmd"; PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $$cmd

## lambda-check: the same zips from the workspace's debug build (target/lambda-debug),
## for the tests: no second build of the dependencies.
lambda-check: venv
	$(CARGO) build --workspace --bins
	@for b in $(LAMBDA_BINS); do \
	  mkdir -p target/lambda-debug/$$b/pkg && cp target/debug/$$b target/lambda-debug/$$b/pkg/bootstrap && \
	  (cd target/lambda-debug/$$b/pkg && rm -f ../bootstrap.zip && $(CURDIR)/$(PY) -m zipfile -c ../bootstrap.zip bootstrap) && \
	  rm -rf target/lambda-debug/$$b/pkg && echo "target/lambda-debug/$$b/bootstrap.zip"; done

## cfn-lint: lint every CloudFormation template in infra/.
cfn-lint: $(VENV)/.cfn-lint
	$(VENV)/bin/cfn-lint infra/*.yaml

## checkov: scan infra/ for insecure settings; every finding is fixed or skipped in the
## template itself, with its reason (Metadata.checkov.skip).
checkov: $(VENV)/checkov/.installed
	$(VENV)/checkov/bin/checkov --directory infra --framework cloudformation --compact --quiet

## deploy: build the release zips and deploy infra/herald.yaml as stack
## $(NAME_PREFIX)-$(STAGE) to the AWS account of the caller's credentials
## (make deploy STAGE=dev; infra/README.md).
deploy: lambda cfn-lint $(VENV)/aws/.installed
	$(AWS_CALLER) AWS_CLI=$(CURDIR)/$(VENV)/aws/bin/aws STAGE=$(STAGE) NAME_PREFIX=$(NAME_PREFIX) \
	  LAMBDA_ARCH=$(LAMBDA_ARCH) infra/deploy.sh deploy

## undeploy: delete stack $(NAME_PREFIX)-$(STAGE) (its queues and tables too).
undeploy: $(VENV)/aws/.installed
	$(AWS_CALLER) AWS_CLI=$(CURDIR)/$(VENV)/aws/bin/aws STAGE=$(STAGE) NAME_PREFIX=$(NAME_PREFIX) \
	  infra/deploy.sh undeploy

# deploy and undeploy use the caller's own AWS settings: drop the emulator's endpoint and
# the dummy credentials and region this Makefile sets when they are not in the environment.
AWS_CALLER = env -u AWS_ENDPOINT_URL \
  $(if $(filter file,$(origin AWS_ACCESS_KEY_ID)),-u AWS_ACCESS_KEY_ID) \
  $(if $(filter file,$(origin AWS_SECRET_ACCESS_KEY)),-u AWS_SECRET_ACCESS_KEY) \
  $(if $(filter file,$(origin AWS_REGION)),-u AWS_REGION) \
  $(if $(filter file,$(origin AWS_DEFAULT_REGION)),-u AWS_DEFAULT_REGION)

clean:
	rm -rf $(VENV) .run target

.PHONY: bench bench-quick fauxqs flamegraph perf-tool

# Section 6's SQS: fauxqs (npm), pinned with its lock file in $(FAUXQS_DIR) and
# installed there (node_modules) by npm ci, then patched to return message attributes
# only when a receive names them, as SQS does (patch.mjs); the bench starts it on
# 127.0.0.1 itself.
FAUXQS_DIR := crates/herald-bench/fauxqs

$(FAUXQS_DIR)/node_modules/.installed: $(FAUXQS_DIR)/package.json $(FAUXQS_DIR)/package-lock.json $(FAUXQS_DIR)/patch.mjs
	@command -v npm >/dev/null || { echo "make bench needs Node.js (20 or newer) and npm for fauxqs, the local SQS of its section 6" >&2; exit 1; }
	cd $(FAUXQS_DIR) && npm ci --no-audit --no-fund --loglevel=error && node patch.mjs
	touch $@

## fauxqs: install fauxqs (the fast local SQS of the bench's section 6) from npm.
fauxqs: $(FAUXQS_DIR)/node_modules/.installed

## bench: benchmarks against baselines measured in the same run (release build, private
## emulator, about 7 minutes plus the release build, 10-25 minutes from scratch); writes BENCHMARKS.md and bench-results.json.
bench: venv fauxqs
	$(CARGO) build --release -p herald-bench -p herald-cli -p herald-consumer
	localstack/with-emulator target/release/herald-bench run --out . --command "make bench"

## bench-quick: a smoke run of the benchmarks (debug build, small counts, no thresholds);
## writes target/bench-quick/BENCHMARKS.md.
bench-quick: venv fauxqs
	$(CARGO) build -p herald-bench -p herald-cli -p herald-consumer
	localstack/with-emulator target/debug/herald-bench run --quick --out target/bench-quick --command "make bench-quick"

# CPU profiles: perf (Debian's linux-perf) records, inferno renders. inferno goes into
# the project ($(INFERNO_ROOT)), built by cargo install at a pinned version.
PERF        ?= perf
INFERNO     := 0.12.8
INFERNO_ROOT := $(VENV)/inferno
PERF_NAME   ?= current
PERF_DIR    := target/perf

$(INFERNO_ROOT)/.installed-$(INFERNO):
	$(CARGO) install inferno --version $(INFERNO) --locked --root $(INFERNO_ROOT)
	touch $@

## perf-tool: install perf (Debian's linux-perf) if it is missing.
perf-tool:
	@command -v $(PERF) >/dev/null 2>&1 || { \
	  echo "perf is missing: installing Debian's linux-perf"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq linux-perf; } || { \
	    echo "could not install linux-perf with apt-get: install perf (linux-perf, or your distribution's perf package) and run make flamegraph again" >&2; exit 1; }; }
	@$(PERF) --version

## flamegraph: CPU profiles of (a) section 1's 10-endpoint run in process (Herald's side)
## and (b) `herald worker` draining 10,000 queued events end to end (fauxqs and moto),
## rendered as docs/perf/$(PERF_NAME)-inproc.svg and docs/perf/$(PERF_NAME)-worker.svg,
## with the top self-time functions in $(PERF_DIR)/$(PERF_NAME)-*-top.md. Built with the
## `profiling` profile (release with line tables, not stripped); docs/perf/README.md.
flamegraph: venv fauxqs perf-tool $(INFERNO_ROOT)/.installed-$(INFERNO)
	$(CARGO) build --profile profiling -p herald-bench -p herald-cli
	mkdir -p $(PERF_DIR) docs/perf
	PERF=$(PERF) target/profiling/herald-bench profile inproc --data $(PERF_DIR)/$(PERF_NAME)-inproc.data
	PERF=$(PERF) localstack/with-emulator target/profiling/herald-bench profile worker --data $(PERF_DIR)/$(PERF_NAME)-worker.data
	PERF=$(PERF) target/profiling/herald-bench flamegraph --data $(PERF_DIR)/$(PERF_NAME)-inproc.data \
	  --svg docs/perf/$(PERF_NAME)-inproc.svg --inferno-bin $(INFERNO_ROOT)/bin \
	  --title "Herald in process, section 1 shape (10 endpoints), $(PERF_NAME)" --table $(PERF_DIR)/$(PERF_NAME)-inproc-top.md
	PERF=$(PERF) target/profiling/herald-bench flamegraph --data $(PERF_DIR)/$(PERF_NAME)-worker.data \
	  --svg docs/perf/$(PERF_NAME)-worker.svg --inferno-bin $(INFERNO_ROOT)/bin \
	  --title "herald worker end to end (fauxqs + moto, fan-out 1), $(PERF_NAME)" --table $(PERF_DIR)/$(PERF_NAME)-worker-top.md

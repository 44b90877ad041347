# Commands a user types; `make help` lists them. CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install models demo test test-unit lint e2e test-arm64 base-image build build-local deploy invoke bench-transformers bench-resnet bench-cold clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

install: $(VENV)/.installed $(SAM_VENV)/.installed .tools/.installed ## Create .venv, .venv-sam (AWS SAM CLI), .tools (asl-validator)

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e .
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

# asl-validator (npm) checks the state machine definitions; skipped where npm is missing.
.tools/.installed:
	mkdir -p .tools
	if command -v npm >/dev/null; then npm install --no-save --no-audit --no-fund --prefix .tools/node asl-validator@4.0.0; fi
	touch $@

models: $(VENV)/.installed ## Train the seven scikit-learn models on the shipped sample into ./models
	$(BIN)/mlinfer train --out models

demo: models ## Run a whole batch job locally on the shipped sample, then a file of bad lines
	$(BIN)/mlinfer run --model logreg --input events/sample-input.jsonl --output out/demo-logreg --batch-size 50 --concurrency 2
	$(BIN)/mlinfer run --model kmeans --input events/sample-input.jsonl --output out/demo-kmeans --mode monolithic
	$(BIN)/mlinfer run --model random_forest --input events/bad-input.jsonl --output out/demo-bad --quiet
	@echo "results: out/demo-*/results.jsonl, summaries: out/demo-*/summary.json"

lint: install ## ruff, cfn-lint and sam validate --lint
	$(BIN)/ruff check src tests benchmarks functions
	$(BIN)/ruff format --check src tests benchmarks functions
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

test: install ## Lint, then every test (the container tests build images when Docker is available)
	$(MAKE) lint
	$(BIN)/python -m pytest

e2e: install ## The whole workflow through the built images: sam local start-lambda, moto S3 and Step Functions
	$(BIN)/python -m pytest -m e2e -s -p no:cacheprovider tests/integration/test_e2e.py

test-arm64: install ## arm64 images under emulation (qemu): build and invoke the scikit-learn functions
	MLINFER_ARM64=1 $(BIN)/python -m pytest -p no:cacheprovider -rs tests/integration/test_arm64.py

test-unit: $(VENV)/.installed ## Unit tests only (no Docker)
	$(BIN)/python -m pytest tests/unit

base-image: ## Docker daemon + a Lambda-compatible Python base image built offline (local/lambda-python:3.11)
	tools/lambda-base-image

build: install ## sam build with the AWS base images (needs public.ecr.aws)
	@$(SAM) build || { echo; echo "make build failed. Without access to public.ecr.aws, build on a local base image:"; \
	  echo "  make base-image && make build-local"; exit 1; }

build-local: install ## sam build with a local Lambda-compatible base image (LAMBDA_BASE_IMAGE; see make base-image)
	sed 's#public.ecr.aws/lambda/python:3.12#$(or $(LAMBDA_BASE_IMAGE),local/lambda-python:3.11)#' template.yaml > template.local.yaml
	$(SAM) build --template-file template.local.yaml --build-dir .aws-sam/local-build

deploy: install ## sam deploy --guided (after make build)
	$(SAM) deploy --guided

# The most recent build wins: .aws-sam/build (make build) or .aws-sam/local-build (make build-local).
BUILT_TEMPLATE = $(firstword $(shell ls -t .aws-sam/build/template.yaml .aws-sam/local-build/template.yaml 2>/dev/null))

invoke: ## sam local invoke FUNCTION=KMeansFunction EVENT=events/kmeans.json (the latest build)
	$(SAM) local invoke $(or $(FUNCTION),KMeansFunction) --event $(or $(EVENT),events/kmeans.json) \
	  $(if $(BUILT_TEMPLATE),--template $(BUILT_TEMPLATE),)

bench-transformers: $(VENV)/.installed ## DistilBERT (IMDb) and TinyLlama-1.1B speed benchmarks (see docs/performance.md)
	$(BIN)/python benchmarks/bert_bench.py --n 500
	$(BIN)/python benchmarks/llama_bench.py --prompts 12 --threads 1,2

bench-cold: $(VENV)/.installed ## INIT of every family in the sandbox against its budget (see docs/performance.md)
	$(BIN)/python benchmarks/cold_start.py

bench-resnet: $(VENV)/.installed ## ResNet-50 whole vs five-stage pipeline vs data-parallel (see docs/resnet.md)
	$(BIN)/python benchmarks/resnet.py

clean: ## Remove build outputs, trained models and run outputs
	rm -rf .aws-sam template.local.yaml template.test.yaml .test-artifacts models out .pytest_cache .ruff_cache .tools

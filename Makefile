# Everything a developer or CI needs; each target installs what it uses.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp
CHECKOV_VERSION := 3.3.30

.PHONY: run test lint types unit template-checks bench package clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# checkov pins its own dependency tree; it lives in a venv of its own.
$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

run: $(STAMP)
	$(BIN)/ctr-billing demo --contacts 5000 --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n auto tests/unit

# cfn-lint (informational rules too, config in .cfnlintrc) and checkov with the custom policies
# in cloudformation/checkov (config in .checkov.yaml): zero findings, skips carry reasons in Metadata.
# Both check build/template.yaml: cloudformation/template.yaml rendered as CloudFormation receives it
# (queries, flows and metric names filled in from their sources).
template-checks: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/ctr-billing package --template-only --output build/template.yaml
	$(BIN)/cfn-lint --non-zero-exit-code informational
	$(TOOLS)/bin/checkov --config-file .checkov.yaml

# The Lambda zip for the template's architecture (build/lambda.zip); with BUCKET=... (and optional
# PREFIX=...) it is uploaded and build/packaged.yaml points LambdaCodeBucket/LambdaCodeKey at it.
package: $(STAMP)
	$(BIN)/ctr-billing package $(if $(BUCKET),--bucket $(BUCKET)) $(if $(PREFIX),--prefix $(PREFIX)) --output build/packaged.yaml

# Headless Chromium for the report's browser test (tests/e2e/test_report_browser.py), from Debian's
# packages, installed only when missing and only as root (CI); otherwise the test is skipped, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "chromium missing (sudo apt-get install chromium): the report's browser test will be skipped"; fi; }

# pytest-xdist: one worker per core (the moto servers and Lambda workers are per test process).
test: lint types template-checks chromium
	$(BIN)/pytest -n auto

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) out build dist .mypy_cache .ruff_cache .pytest_cache

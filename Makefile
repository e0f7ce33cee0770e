# make demo: install, then materialize every asset of the embedded sample project (no server needed).
# make test: install (lsflow and, in its own virtualenv, Label Studio), then run every test.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-ls
LABEL_STUDIO_VERSION := 1.23.2
# This machine's pip configuration names index folders that may not exist; its warnings are noise.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true
# Dagster's instance lives in the repository (see dagster.yaml); partitions persist between runs.
export DAGSTER_HOME := $(CURDIR)
SAMPLE_PROJECT := 1

.PHONY: install demo test dev
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(VENV)/bin/pip install -q -e ".[test,spacy,audio]" 2>&1 | $(QUIET_PIP)
	touch $@

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==$(LABEL_STUDIO_VERSION) 2>&1 | $(QUIET_PIP)
	touch $@

demo: install
	$(VENV)/bin/lsflow partitions add $(SAMPLE_PROJECT)
	@mkdir -p .dagster
	$(VENV)/bin/dagster asset materialize -m lsflow --select '*' --partition $(SAMPLE_PROJECT) \
		> .dagster/demo.log 2>&1 || { tail -40 .dagster/demo.log; exit 1; }
	@grep -E "ASSET_CHECK_EVALUATION|RUN_SUCCESS" .dagster/demo.log | sed 's/.* - //'
	@echo
	@echo "Datasets of sample project $(SAMPLE_PROJECT):"
	@for d in data/output/project-$(SAMPLE_PROJECT)/datasets/*/; do \
		echo "  $$d  ($$(grep -o '"regions_written": [0-9]*' $$d/lsflow_report.json), $$(grep -o '"regions_dropped": [0-9]*' $$d/lsflow_report.json))"; done
	@echo "Normalized store: data/output/project-$(SAMPLE_PROJECT)/store/"

test: install $(LS_VENV)/.installed
	LABEL_STUDIO_BIN=$(CURDIR)/$(LS_VENV)/bin/label-studio $(VENV)/bin/pytest

dev: install
	$(VENV)/bin/dagster dev -w workspace.yaml

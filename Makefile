# make demo: install, then materialize every asset of the embedded sample projects (no server needed).
# make test: install (lsflow and, in their own virtualenvs, Label Studio and the third-party importers), then run every test.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-ls
LABEL_STUDIO_VERSION := 1.23.2
# The importers lsflow_tests/importers loads COCO, VOC and YOLO with, in a virtualenv of their own
# (neither needs torch). The stamp names the versions: changing one reinstalls.
IMPORTERS_VENV := .venv-importers
DATUMARO_VERSION := 1.13.12
SUPERVISION_VERSION := 0.31.2
IMPORTERS_STAMP := $(IMPORTERS_VENV)/.installed-datumaro-$(DATUMARO_VERSION)-supervision-$(SUPERVISION_VERSION)
# This machine's pip configuration names index folders that may not exist; its warnings are noise.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true
# Dagster's instance lives in the repository (see dagster.yaml); partitions persist between runs.
export DAGSTER_HOME := $(CURDIR)
# The browser the Dagster UI test drives (Debian's package; no tool downloads a browser of its own).
CHROMIUM := /usr/bin/chromium
# The scale-out test (lsflow_tests/deploy) starts a throwaway PostgreSQL and Redis from Debian's packages.
POSTGRES_BIN := /usr/lib/postgresql/15/bin
REDIS_SERVER := /usr/bin/redis-server
# The embedded samples: 1 images, 2 text (named entities), 3 audio (transcriptions).
SAMPLE_PROJECTS := 1 2 3
# The installs (three virtualenvs, Debian's packages) wait on the network more than on the CPU: side by side.
MAKEFLAGS += --jobs=4

.PHONY: install demo test test-deploy lint dev
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(VENV)/bin/pip install -q -e ".[test,spacy,audio,video,deploy]" 2>&1 | $(QUIET_PIP)
	touch $@

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==$(LABEL_STUDIO_VERSION) 2>&1 | $(QUIET_PIP)
	touch $@

# Debian's packages in one apt-get call: two at once would fight over dpkg's lock.
APT_PACKAGES := chromium postgresql-15 redis-server
$(CHROMIUM) $(POSTGRES_BIN)/initdb $(REDIS_SERVER) &:
	apt-get install -y -q $(APT_PACKAGES) > /dev/null || { apt-get update -q > /dev/null && apt-get install -y -q $(APT_PACKAGES) > /dev/null; }

$(IMPORTERS_STAMP):
	rm -rf $(IMPORTERS_VENV)
	$(PYTHON) -m venv $(IMPORTERS_VENV)
	$(IMPORTERS_VENV)/bin/pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(IMPORTERS_VENV)/bin/pip install -q datumaro==$(DATUMARO_VERSION) supervision==$(SUPERVISION_VERSION) 2>&1 | $(QUIET_PIP)
	$(IMPORTERS_VENV)/bin/python -c "import datumaro, supervision"
	touch $@

demo: install
	$(VENV)/bin/lsflow partitions add $(SAMPLE_PROJECTS)
	@mkdir -p .dagster
	@for p in $(SAMPLE_PROJECTS); do \
		echo "Sample project $$p:"; \
		$(VENV)/bin/dagster asset materialize -m lsflow.definitions --select '*' --partition $$p \
			> .dagster/demo-$$p.log 2>&1 || { tail -40 .dagster/demo-$$p.log; exit 1; }; \
		grep -E "ASSET_CHECK_EVALUATION|RUN_SUCCESS" .dagster/demo-$$p.log | sed 's/.* - //'; \
		for d in data/output/project-$$p/datasets/*/; do \
			echo "  $$d  ($$(grep -o '"regions_written": [0-9]*' $$d/lsflow_report.json), $$(grep -o '"regions_dropped": [0-9]*' $$d/lsflow_report.json))"; done; \
		echo "  normalized store: data/output/project-$$p/store/"; echo; \
	done

test: lint $(LS_VENV)/.installed $(IMPORTERS_STAMP) $(CHROMIUM) $(POSTGRES_BIN)/initdb $(REDIS_SERVER)
	LABEL_STUDIO_BIN=$(CURDIR)/$(LS_VENV)/bin/label-studio LSFLOW_IMPORTERS_PYTHON=$(CURDIR)/$(IMPORTERS_VENV)/bin/python \
		LSFLOW_CHROMIUM=$(CHROMIUM) LSFLOW_POSTGRES_BIN=$(POSTGRES_BIN) LSFLOW_REDIS_SERVER=$(REDIS_SERVER) $(VENV)/bin/pytest

# The production profile (deploy/) for real: PostgreSQL, the daemon's run queue, two Celery workers, a backfill.
test-deploy: install $(POSTGRES_BIN)/initdb $(REDIS_SERVER)
	LSFLOW_POSTGRES_BIN=$(POSTGRES_BIN) LSFLOW_REDIS_SERVER=$(REDIS_SERVER) $(VENV)/bin/pytest -m deploy lsflow_tests/deploy

# Lint and import order (ruff), types (mypy), the layers' import contracts (import-linter; see docs/architecture.md).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

dev: install
	$(VENV)/bin/dagster dev -w workspace.yaml

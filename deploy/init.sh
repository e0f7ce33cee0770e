#!/usr/bin/env bash
# Prepares the PostgreSQL instance once (and again after a Dagster upgrade): creates or migrates Dagster's
# tables and sets the `label_studio` pool's limit, the snapshots of all runs taken at once (default 1).
set -euo pipefail
dagster instance migrate
dagster instance concurrency set label_studio "${LSFLOW_LABEL_STUDIO_POOL_LIMIT:-1}"

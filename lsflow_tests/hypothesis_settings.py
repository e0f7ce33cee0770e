"""Hypothesis settings for lsflow's property tests and bounded fuzzing: deterministic and CI-sized.

Every property and fuzz test takes its settings from `bounded(n)`: a fixed example sequence
(`derandomize=True`, no example database), `n` examples and a per-example deadline. For a long run,
`LSFLOW_FUZZ_SCALE=50` multiplies every test's examples (and lifts the deadline, which only guards
CI's time); `LSFLOW_FUZZ_RANDOM=1` draws fresh random examples instead of the fixed sequence.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("LSFLOW_FUZZ_SCALE") or 1))
RANDOM = os.environ.get("LSFLOW_FUZZ_RANDOM") == "1"


def bounded(max_examples: int, deadline_ms: int = 2000) -> settings:
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None if SCALE > 1 else timedelta(milliseconds=deadline_ms),
        derandomize=not RANDOM,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )

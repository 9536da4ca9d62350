"""Test-suite wide settings."""
import os

from hypothesis import HealthCheck, settings

# Property tests must not be flaky on a loaded 2-core CI machine: no deadlines,
# and a fixed example budget that keeps the whole suite in minutes.
settings.register_profile(
    "zynqmm",
    deadline=None,
    max_examples=int(os.environ.get("ZYNQMM_HYPOTHESIS_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("zynqmm")

"""Suite-wide test settings.

Hypothesis: no per-example deadline (the machines that run the suite are shared and noisy; speed
is measured by benchmarks/, not by tests) and, by default, derandomized examples so that a CI run
is reproducible. ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples instead (and more of
them) for a local hunt.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

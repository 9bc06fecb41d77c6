"""Shared test fixtures."""

from __future__ import annotations

import os

# Keep torch and BLAS from oversubscribing the CI machine's two cores when pytest-xdist runs.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

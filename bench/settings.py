"""Benchmark settings: production settings plus a bare view to compare webhook intake against."""

from iex.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

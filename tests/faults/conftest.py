"""The fault suite's stack: the whole system in processes (bench/stack.py), with its own PostgreSQL and Redis, so
breaking them breaks nothing else. The sweeper and the retries run on short timings, so a phase takes seconds where
production would take minutes: the same code paths, compressed."""

from __future__ import annotations

import os

import pytest

from bench.stack import Stack
from tests.faults.harness import Books, Merchant

SETTINGS = {
    "SWEEP_INTERVAL_SECONDS": "2",
    "SWEEP_AFTER_SECONDS": "4",
    "TRANSFER_LEASE_SECONDS": "15",
    # A long outage is run by hand with production's backoff: RETRY_BACKOFF_SECONDS=30 OUTAGE_SECONDS=1800.
    "RETRY_BACKOFF_SECONDS": os.environ.get("RETRY_BACKOFF_SECONDS", "2"),
}


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("stack"), workers=2, concurrency=2, settings=SETTINGS) as stack:
        yield stack


@pytest.fixture(scope="package")
def shops(stack):
    """Four integrations whose shops post orders by webhook; their e-conomic is the sandbox's, reached through the
    cable the accounting outage unplugs. The fourth is the one whose allowance runs out."""
    books = f"http://127.0.0.1:{stack.cables['economic'].port}"
    return stack.python("bench.stack:make_integrations", 4, stack.sandbox_url, books)


@pytest.fixture
def books(stack):
    return Books(stack)


@pytest.fixture
def merchant(stack, shops):
    return lambda shop: Merchant(stack, shop)

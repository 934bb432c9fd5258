"""Whether the Kafka tests run against a real broker (``STREAMJOIN_TEST_KAFKA``)."""

from __future__ import annotations

import os

import pytest

REAL_KAFKA = os.environ.get("STREAMJOIN_TEST_KAFKA")
mock_only = pytest.mark.skipif(
    REAL_KAFKA is not None, reason="checks librdkafka's mock cluster itself"
)

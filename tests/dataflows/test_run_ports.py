"""The ports a multi-process run's workers listen on."""

from __future__ import annotations

import socket

import pytest

import dataflows.run as run_module
from dataflows.run import _ephemeral_range, free_ports


def test_worker_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    # Below the range the kernel hands out for bind(0) and outgoing
    # connections, nobody else can take a port between the check and the
    # worker's bind (CI once failed with "Address already in use").
    low, _ = _ephemeral_range()
    for _ in range(20):
        ports = free_ports(4)
        assert len(set(ports)) == 4
        assert all(10_000 <= p < low for p in ports)
        for p in ports:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_never_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # A narrow range (1,000 ports) of which 40 are held: without the check,
    # 200 draws of two would hit a held one about 16 times.
    monkeypatch.setattr(run_module, "_ephemeral_range", lambda: (11_000, 60_999))
    held = []
    try:
        for port in range(10_000, 10_040):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen()
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) > 20
        for _ in range(200):
            ports = run_module.free_ports(2)
            assert all(10_000 <= p < 11_000 for p in ports)
            assert not taken & set(ports)
    finally:
        for s in held:
            s.close()

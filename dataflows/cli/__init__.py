"""The ``streamjoin`` command: argument parsing and its subcommands.

- :mod:`~dataflows.cli.command`: the parser, ``run`` and ``validate``, and
  :func:`main` (the console script; ``python -m dataflows.cli`` too);
- :mod:`~dataflows.cli.demo`: ``generate`` and ``demo``;
- :mod:`~dataflows.cli.snapshots`: ``snapshots`` and ``replay``, and the
  recovery flags of ``run``.
"""

from __future__ import annotations

from dataflows.cli.command import main

__all__ = ["main"]

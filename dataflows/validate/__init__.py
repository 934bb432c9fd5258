"""``streamjoin validate RUN_DIR``: the batch check of a finished run, in DuckDB.
It imports no Bytewax.

- :mod:`~dataflows.validate.check`: :func:`validate` and the command's
  :func:`main` (the steps are in its docstring);
- :mod:`~dataflows.validate.tables`: the inputs and outputs as tables for
  DuckDB; :mod:`~dataflows.validate.expected`: the batch interval join;
  :mod:`~dataflows.validate.compare` and :mod:`~dataflows.validate.counters`:
  rows, ids and counters against it; :mod:`~dataflows.validate.report`: the
  findings and their rendering.
"""

from __future__ import annotations

from dataflows.validate.check import main, validate
from dataflows.validate.report import Finding, ValidationReport

__all__ = ["Finding", "ValidationReport", "main", "validate"]

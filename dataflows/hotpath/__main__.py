"""``python -m dataflows.hotpath``: say how the hot path runs; exit 1 unless it is
compiled and current (``make check`` runs it). With ``STREAMJOIN_PURE_PYTHON=1``
a pure-Python hot path is what was asked for, and passes."""

from __future__ import annotations

import os
import sys

from dataflows.hotpath.status import PURE_ENV, hot_path


def main() -> int:
    status = hot_path()
    pure_wanted = os.environ.get(PURE_ENV, "") not in ("", "0")
    ok = status.is_compiled or (pure_wanted and not status.compiled)
    print(f"hot path: {status.describe()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

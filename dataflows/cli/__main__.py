"""``python -m dataflows.cli``: the ``streamjoin`` command."""

from __future__ import annotations

import sys

from dataflows.cli.command import main

sys.exit(main())

"""``python -m rxtokens``: the ``rxtokens`` command (see `rxtokens.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m rxtokens.server``: the same as ``rxtokens serve``."""

from .run import main

raise SystemExit(main())

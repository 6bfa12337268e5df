"""Operators: every processing stage of a token stream, used with ``pipe()``.

Each public operator is a short documented factory here; its implementation
lives in a private module of its family (``_sse.py``, ``_decode_openai.py`` ...).
Factories validate their arguments eagerly (raising `ConfigError`) and create
all per-subscription state inside ``subscribe``.
"""

from __future__ import annotations

# Sections below are grouped by family; keep each family's public functions together.

# --- sse ---

# --- aggregate ---

# --- decoders ---

# --- broadcast-related ---

# --- tokens and filters ---

# --- pacing, backpressure, metrics ---

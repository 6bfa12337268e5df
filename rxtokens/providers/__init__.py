"""Providers: each returns a cold ``Observable[StreamToken]`` (one request per subscription)."""

from __future__ import annotations

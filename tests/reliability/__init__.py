"""Reliability suite: faults, bad input, load, soaks and fuzzing against the loopback server."""

"""The engine and its model: pure evaluation of entries into events (no I/O, no wall clock)."""

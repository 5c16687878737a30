"""The benchmark harness: a realistic aisha journal with its expected events, and the catch-up
measurement against journalctl. Not part of the test suite; see bench/README.md."""

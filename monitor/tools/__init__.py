"""The offline tools: replay, explain, test-rules, status, journal export."""

"""Test helpers (builders, the import-graph reader, FLOP counting, tool loading); no tests here."""

"""Configuration: the line-aware YAML layer, the config schema, and regex checks."""

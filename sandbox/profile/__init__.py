"""Profiles: the YAML format, its models, loading with line numbers, and the JSON Schema."""

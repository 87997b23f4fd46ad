"""Small real programs that tests start as `command` services."""

"""Running sandboxes: the orchestrator, the detached supervisor, state and teardown."""

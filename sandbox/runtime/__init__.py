"""Running sandboxes: the Sandbox class, the detached supervisor, state and teardown."""

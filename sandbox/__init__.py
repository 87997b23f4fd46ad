"""loopback sandbox: a multi-service setup on loopback addresses, offline, in a second."""

__version__ = "0.1.0"

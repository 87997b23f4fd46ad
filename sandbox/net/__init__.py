"""Loopback networking: addresses, binding with diagnosis, the socket table, conflict rules."""

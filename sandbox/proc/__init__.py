"""Processes by identity: who a pid is, how to spawn, signal and tear down process trees."""

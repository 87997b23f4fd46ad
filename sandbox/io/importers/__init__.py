"""Importers: each turns one foreign format into a profile and a report of what it lost."""

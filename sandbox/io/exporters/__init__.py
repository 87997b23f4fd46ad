"""Exporters: each turns a profile into files a container engine runs."""

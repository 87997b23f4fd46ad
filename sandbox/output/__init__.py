"""The output layer: the Printer and one view module per family of results."""

from sandbox.output.printer import Printer, colour_wanted

__all__ = ["Printer", "colour_wanted"]

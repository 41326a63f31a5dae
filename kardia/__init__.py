"""Kardia: an open reproduction of Kardia-R1 (arXiv 2512.01282)."""

__version__ = "0.1.0"

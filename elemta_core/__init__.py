"""Elemta: a mail server whose policy lives in plugins."""

__version__ = "0.1.0"

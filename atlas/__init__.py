"""ATLAS, the home voice assistant: the brain and the daemon."""

__version__ = "0.1.0"

"""The package version, in a module of its own so that modules inside the package can read it
without importing the package ``__init__`` (which imports them)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

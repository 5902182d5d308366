"""The ``gateway`` command line."""

from gateway.cli.app import main

__all__ = ["main"]

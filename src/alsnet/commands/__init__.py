"""Subcommands of the ``alsnet`` CLI, one module each (see :mod:`alsnet.cli`)."""

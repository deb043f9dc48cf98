"""Reporting: figures of run folders and self-contained HTML reports.

Reads run folders through :mod:`alsnet.training.runs`; imports nothing from the CLI.
"""

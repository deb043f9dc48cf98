"""The ``alsnet`` command line: :mod:`alsnet.cli.main` and one module per subcommand."""

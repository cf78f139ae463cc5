"""Workflow stages: one module per ``thne`` subcommand (COMMAND, HELP, add_arguments, run)."""

"""One module per ``thne`` subcommand, in workflow order (see :data:`thne.cli.STAGE_MODULES`).

Each module holds ``COMMAND`` (the subcommand), ``HELP``, ``add_arguments(parser)`` and
``run(args)``. The workflow fingerprints a rule's code from its stage module and the package
modules that module imports, so a stage module imports what it runs and nothing else; heavy
libraries are imported inside ``run`` to keep ``thne --help`` quick.
"""

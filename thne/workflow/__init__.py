"""The workflow's decisions, in plain Python that the Snakemake rules call.

Reading order: :mod:`~thne.workflow.config` resolves a user's config once (shipped values,
``base:`` sections, variants, schema defaults and checks, grids); :mod:`~thne.workflow.runs`
turns it into the :class:`~thne.train.config.TrainConfig` of each training run and the flags
of ``thne train``; :mod:`~thne.workflow.lineage` declares each step once (its stage module,
its own config values, its upstream steps) and fingerprints what each result depends on.
:mod:`~thne.workflow.sources`, :mod:`~thne.workflow.shards`, :mod:`~thne.workflow.paths` and
:mod:`~thne.workflow.predict` give the rules their paths, flags and media fingerprints;
:mod:`~thne.workflow.docs` writes config/README.md and docs/stages.md. The ``.smk`` files
under ``workflow/rules`` only wire these to paths.

Nothing here imports torch or reads a file the workflow writes, except where a function says
so: every Snakemake parse (one per job) imports this package.
"""

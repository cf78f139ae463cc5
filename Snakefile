# thne: t-HNE from raw videos to metrics. The targets: docs/reference/targets.md.
from snakemake.utils import min_version

min_version("9.0")


# No configfile: directive. common.smk merges config/config.yaml under the user's values
# itself, so that a section a user gives whole (a dataset's source:) replaces the shipped one;
# the directive would deep-merge the shipped source into the user's first.
include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/import.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/openface.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
# Before report.smk: its pages take these figures as inputs.
include: "workflow/rules/figures.smk"
include: "workflow/rules/clips.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/predict.smk"


# Seconds of work each: on a cluster they run on the submitting host, not as jobs.
localrules:
    openface_plan,
    evaluate,
    aggregate,
    variants,
    table,
    ablation,
    loss_curves,
    report_figures,
    cases,
    report_pages,
    grid_select,
    tuned_evaluate,
    tuned_variants,
    grid_report,


rule all:
    default_target: True
    input:
        "results/demo/metrics.json",

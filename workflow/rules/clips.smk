# Every test clip with each variant's prediction, sortable and filterable.
rule clip_page:
    input:
        manifest="data/{ds}/manifest.tsv",
        predictions=gathering(
            "results/{ds}/report/clips.html",
            lambda wc: paths.trained_runs(config, wc.ds, "predictions.tsv"),
        ),
    output:
        report(
            "results/{ds}/report/clips.html",
            caption="../report/clips.rst",
            category="Results",
            subcategory="Clips",
            labels={"dataset": "{ds}", "page": "per-clip predictions"},
        ),
    log:
        "logs/{ds}/clip_page.log",
    conda:
        "../../environment.yml"
    params:
        code=code_of("clip_page"),
        lineage=lineage_of("clip_page"),
    shell:
        "thne clip-page --predictions {input.predictions} --manifest {input.manifest}"
        " --out {output} --dataset {wildcards.ds} > {log} 2>&1"

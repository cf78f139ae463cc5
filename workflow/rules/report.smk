# Each variant's metrics over seeds, and its paired bootstrap against thne over test videos
# (evaluate.bootstrap_unit; the manifest says each clip's video).
rule variants:
    input:
        manifest="data/{ds}/manifest.tsv",
        runs=gathering(
            "results/{ds}/variants.json",
            lambda wc: paths.trained_runs(config, wc.ds, "metrics.json"),
        ),
        predictions=gathering(
            "results/{ds}/variants.json",
            lambda wc: paths.trained_runs(config, wc.ds, "predictions.tsv"),
        ),
    output:
        "results/{ds}/variants.json",
    log:
        "logs/{ds}/variants.log",
    conda:
        "../../environment.yml"
    params:
        variants=dataset("train", "variants", join=True),
        unit=dataset("evaluate", "bootstrap_unit"),
        code=code_of("variants"),
        lineage=lineage_of("variants"),
    shell:
        "thne variants --runs {input.runs} --predictions {input.predictions}"
        " --variants {params.variants} --bootstrap-unit {params.unit}"
        " --manifest {input.manifest}"
        " --out {output} --dataset {wildcards.ds} > {log} 2>&1"


rule table:
    input:
        metrics="results/{ds}/metrics.json",
        variants="results/{ds}/variants.json",
        visual="features/{ds}/visual.h5",
        audio="features/{ds}/audio.h5",
    output:
        "results/{ds}/table.md",
    log:
        "logs/{ds}/table.log",
    conda:
        "../../environment.yml"
    params:
        encoder=dataset("text", "encoder"),
        paper=lambda wc: sources.paper_dataset(config, wc.ds),
        code=code_of("table"),
        lineage=lineage_of("table"),
    shell:
        "thne table --metrics {input.metrics} --variants-json {input.variants}"
        " --visual {input.visual} --audio {input.audio} --encoder {params.encoder:q}"
        " --out {output} --dataset {wildcards.ds} --paper {params.paper} > {log} 2>&1"


rule ablation:
    input:
        variants="results/{ds}/variants.json",
        visual="features/{ds}/visual.h5",
        audio="features/{ds}/audio.h5",
    output:
        "results/{ds}/ablation.md",
    log:
        "logs/{ds}/ablation.log",
    conda:
        "../../environment.yml"
    params:
        encoder=dataset("text", "encoder"),
        paper=lambda wc: sources.paper_dataset(config, wc.ds),
        code=code_of("ablation"),
        lineage=lineage_of("ablation"),
    shell:
        "thne ablation --variants-json {input.variants} --visual {input.visual}"
        " --audio {input.audio} --encoder {params.encoder:q} --out {output}"
        " --dataset {wildcards.ds} --paper {params.paper} > {log} 2>&1"


# Figure 3: (a) t-HNE and, where trained, (b) the Eq. 10 residual variant.
rule loss_curves:
    input:
        gathering(
            "results/{ds}/figures/loss_curves.png",
            lambda wc: paths.run_paths(
                config, wc.ds, "history.tsv", figure_variants(config, wc.ds)
            ),
        ),
    output:
        report(
            "results/{ds}/figures/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Figures",
            subcategory="Seeds and epochs",
            labels={"dataset": "{ds}", "figure": "Figure 3: loss curves"},
        ),
    log:
        "logs/{ds}/loss_curves.log",
    conda:
        "../../environment.yml"
    params:
        code=code_of("loss_curves"),
        lineage=lineage_of("loss_curves"),
    shell:
        "thne loss-curves --histories {input} --out {output}"
        " --title 'Loss terms per epoch on {wildcards.ds} (mean over seeds, band: ±1 std)'"
        " > {log} 2>&1"


rule cases:
    input:
        manifest="data/{ds}/manifest.tsv",
        predictions=gathering(
            "results/{ds}/cases.md",
            lambda wc: paths.run_paths(config, wc.ds, "predictions.tsv", ["thne"]),
        ),
    output:
        "results/{ds}/cases.md",
    log:
        "logs/{ds}/cases.log",
    conda:
        "../../environment.yml"
    params:
        code=code_of("cases"),
        lineage=lineage_of("cases"),
    shell:
        "thne cases --predictions {input.predictions} --manifest {input.manifest}"
        " --out {output} --dataset {wildcards.ds} > {log} 2>&1"


# Pages of `snakemake --report results/{ds}/report.html results/{ds}/report/index.html`.
rule report_pages:
    input:
        clips="results/{ds}/report/clips.html",
        table="results/{ds}/table.md",
        ablation="results/{ds}/ablation.md",
        cases="results/{ds}/cases.md",
        figure="results/{ds}/figures/loss_curves.png",
        # Not read by the pages: they make the report, which embeds them, build them too.
        figures=rules.report_figures.output,
        splits="data/{ds}/splits.json",
        excluded="data/{ds}/excluded.tsv",
        audio="features/{ds}/audio.h5",
        visual="features/{ds}/visual.h5",
    output:
        index="results/{ds}/report/index.html",
        table=report(
            "results/{ds}/report/table.html",
            caption="../report/table.rst",
            category="Results",
            subcategory="Tables",
            labels={"dataset": "{ds}", "page": "Table 3: t-HNE"},
        ),
        ablation=report(
            "results/{ds}/report/ablation.html",
            caption="../report/ablation.rst",
            category="Results",
            subcategory="Tables",
            labels={"dataset": "{ds}", "page": "Table 4: variants"},
        ),
        cases=report(
            "results/{ds}/report/cases.html",
            caption="../report/cases.rst",
            category="Results",
            subcategory="Clips",
            labels={"dataset": "{ds}", "page": "Table 5: cases"},
        ),
        splits=report(
            "results/{ds}/report/splits.html",
            caption="../report/splits.rst",
            category="Data",
            subcategory="Inputs",
            labels={"dataset": "{ds}", "page": "splits"},
        ),
        excluded=report(
            "results/{ds}/report/excluded.html",
            caption="../report/excluded.rst",
            category="Data",
            subcategory="Inputs",
            labels={"dataset": "{ds}", "page": "excluded clips"},
        ),
        config=report(
            "results/{ds}/report/config.html",
            caption="../report/config.rst",
            category="Data",
            subcategory="Inputs",
            labels={"dataset": "{ds}", "page": "configuration"},
        ),
    log:
        "logs/{ds}/report_pages.log",
    conda:
        "../../environment.yml"
    params:
        config=lambda wc: dataset_view(config, wc.ds),
        code=code_of("report_pages"),
        lineage=lineage_of("report_pages"),
    shell:
        "thne report-pages --table {input.table} --ablation {input.ablation}"
        " --cases {input.cases} --figure {input.figure} --splits {input.splits}"
        " --clips {input.clips}"
        " --excluded {input.excluded} --audio {input.audio} --visual {input.visual}"
        " --config-yaml {params.config:q} --dataset {wildcards.ds}"
        " --out-dir results/{wildcards.ds}/report > {log} 2>&1"

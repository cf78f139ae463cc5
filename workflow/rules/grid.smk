# The paper's grid search (section 4), for each variant of datasets.<ds>.grid.variants: every
# point of the grid trained with the search seeds, the best chosen on validation MAE alone,
# then trained with every seed of train.seeds, evaluated, and set beside the untuned runs.


# One run of one point: the train rule, at the point's values.
use rule train as grid_train with:
    output:
        model="results/{ds}/grid/{variant}/{point}/seed{seed}/model.safetensors",
        run="results/{ds}/grid/{variant}/{point}/seed{seed}/run.json",
        history="results/{ds}/grid/{variant}/{point}/seed{seed}/history.tsv",
        predictions="results/{ds}/grid/{variant}/{point}/seed{seed}/predictions.tsv",
        valid="results/{ds}/grid/{variant}/{point}/seed{seed}/valid_metrics.json",
    log:
        "logs/{ds}/grid/{variant}/{point}/seed{seed}.log",
    benchmark:
        "benchmarks/out/{ds}/grid/{variant}/{point}/seed{seed}.tsv"
    params:
        flags=grid_flags,
        lineage=grid_lineage,


# A checkpoint: the tuned runs read the chosen point when it is known, as a param.
checkpoint grid_select:
    input:
        # Validation metrics only: the selection never sees a test prediction.
        lambda wc: grid_runs(wc, "valid_metrics.json"),
    output:
        "results/{ds}/grid/{variant}/best.json",
    log:
        "logs/{ds}/grid/{variant}/select.log",
    conda:
        "../../environment.yml"
    params:
        axes=lambda wc: json.dumps(grid_section(wc)["axes"]),
        seeds=lambda wc: ",".join(map(str, grid_section(wc)["seeds"])),
        grid_dir=lambda wc: f"results/{wc.ds}/grid/{wc.variant}",
        code=stage_code("grid_select"),
        lineage=lineage_of("grid_select", variant=True),
    shell:
        "thne grid-select --axes {params.axes:q} --seeds {params.seeds}"
        " --grid-dir {params.grid_dir} --runs {input} --dataset {wildcards.ds}"
        " --variant {wildcards.variant} --out {output} > {log} 2>&1"


# The chosen point, trained with every seed.
use rule train as tuned_train with:
    input:
        unpack(tuned_inputs),
    output:
        model="results/{ds}/tuned/{variant}/seed{seed}/model.safetensors",
        run="results/{ds}/tuned/{variant}/seed{seed}/run.json",
        history="results/{ds}/tuned/{variant}/seed{seed}/history.tsv",
        predictions="results/{ds}/tuned/{variant}/seed{seed}/predictions.tsv",
        valid="results/{ds}/tuned/{variant}/seed{seed}/valid_metrics.json",
    log:
        "logs/{ds}/tuned/train/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/out/{ds}/tuned/train/{variant}/seed{seed}.tsv"
    params:
        flags=tuned_flags,
        lineage=tuned_lineage("run"),


use rule evaluate as tuned_evaluate with:
    input:
        "results/{ds}/tuned/{variant}/seed{seed}/predictions.tsv",
    output:
        "results/{ds}/tuned/{variant}/seed{seed}/metrics.json",
    log:
        "logs/{ds}/tuned/evaluate/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/out/{ds}/tuned/evaluate/{variant}/seed{seed}.tsv"
    params:
        lineage=tuned_lineage("metrics"),


# Each tuned variant over seeds, and its paired bootstrap against tuned t-HNE.
use rule variants as tuned_variants with:
    input:
        runs=lambda wc: tuned_runs(wc, "metrics.json"),
        predictions=lambda wc: tuned_runs(wc, "predictions.tsv"),
    output:
        "results/{ds}/tuned/variants.json",
    log:
        "logs/{ds}/tuned/variants.log",
    params:
        variants=lambda wc: ",".join(grid_variants(wc)),
        lineage=tuned_variants_lineage,


rule grid_report:
    input:
        best=lambda wc: expand(
            "results/{ds}/grid/{variant}/best.json",
            ds=wc.ds,
            variant=grid_variants(wc),
        ),
        tuned="results/{ds}/tuned/variants.json",
        tuned_predictions=lambda wc: tuned_runs(wc, "predictions.tsv"),
        untuned=lambda wc: [
            path
            for v in grid_variants(wc)
            for path in seed_runs(wc, "metrics.json", variant=v)
        ],
        untuned_predictions=lambda wc: [
            path
            for v in grid_variants(wc)
            for path in seed_runs(wc, "predictions.tsv", variant=v)
        ],
    output:
        table="results/{ds}/grid.md",
        figure=report(
            "results/{ds}/figures/grid.png",
            caption="../report/grid_figure.rst",
            category="Figures",
            labels={
                "dataset": "{ds}",
                "figure": "grid search: validation MAE per axis",
            },
        ),
        page=report(
            "results/{ds}/report/grid.html",
            caption="../report/grid.rst",
            category="Results",
            labels={"dataset": "{ds}", "page": "Table 2: grid search"},
        ),
    log:
        "logs/{ds}/grid_report.log",
    conda:
        "../../environment.yml"
    params:
        variants=lambda wc: ",".join(grid_variants(wc)),
        untuned_values=untuned_values,
        paper=paper_dataset,
        code=stage_code("grid_report"),
        lineage=grid_report_lineage,
    shell:
        "thne grid-report --dataset {wildcards.ds} --paper {params.paper}"
        " --variants {params.variants} --best {input.best}"
        " --tuned-variants {input.tuned} --tuned-predictions {input.tuned_predictions}"
        " --untuned-runs {input.untuned} --untuned-predictions {input.untuned_predictions}"
        " --untuned-values {params.untuned_values:q} --out {output.table}"
        " --figure {output.figure} --page {output.page} > {log} 2>&1"

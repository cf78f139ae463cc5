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
        flags=lambda wc: runs.run_flags(config, wc.ds, wc.variant, grid_point(wc)),
        lineage=lineage_of("train", grid_point),


# A checkpoint: the tuned runs read the chosen point when it is known, as a param.
checkpoint grid_select:
    input:
        # Validation metrics only: the selection never sees a test prediction.
        gathering(
            "results/{ds}/grid/{variant}/best.json",
            lambda wc: paths.grid_runs(
                config, GRIDS, wc.ds, wc.variant, "valid_metrics.json"
            ),
        ),
    output:
        "results/{ds}/grid/{variant}/best.json",
    log:
        "logs/{ds}/grid/{variant}/select.log",
    conda:
        "../../environment.yml"
    params:
        axes=lambda wc: json.dumps(paths.grid_section(config, wc.ds)["axes"]),
        seeds=dataset("grid", "seeds", join=True),
        grid_dir=lambda wc: f"results/{wc.ds}/grid/{wc.variant}",
        code=code_of("grid_select"),
        lineage=lineage_of("grid_select"),
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
        flags=lambda wc: runs.run_flags(config, wc.ds, wc.variant, chosen(wc)),
        lineage=lineage_of("train", chosen),


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
        lineage=lineage_of("evaluate", chosen),


# Each tuned variant over seeds, and its paired bootstrap against tuned t-HNE.
use rule variants as tuned_variants with:
    input:
        manifest="data/{ds}/manifest.tsv",
        runs=gathering(
            "results/{ds}/tuned/variants.json",
            lambda wc: paths.tuned_runs(config, wc.ds, "metrics.json", chosen_point),
        ),
        predictions=gathering(
            "results/{ds}/tuned/variants.json",
            lambda wc: paths.tuned_runs(
                config, wc.ds, "predictions.tsv", chosen_point
            ),
        ),
    output:
        "results/{ds}/tuned/variants.json",
    log:
        "logs/{ds}/tuned/variants.log",
    params:
        variants=lambda wc: ",".join(paths.grid_variants(config, wc.ds)),
        lineage=lineage_of("tuned_variants"),


rule grid_report:
    input:
        manifest="data/{ds}/manifest.tsv",
        best=lambda wc: paths.grid_files(config, wc.ds, "best.json"),
        tuned="results/{ds}/tuned/variants.json",
        tuned_predictions=gathering(
            "results/{ds}/grid.md",
            lambda wc: paths.tuned_runs(
                config, wc.ds, "predictions.tsv", chosen_point
            ),
        ),
        untuned=gathering(
            "results/{ds}/grid.md",
            lambda wc: paths.untuned_runs(config, wc.ds, "metrics.json"),
        ),
        untuned_predictions=gathering(
            "results/{ds}/grid.md",
            lambda wc: paths.untuned_runs(config, wc.ds, "predictions.tsv"),
        ),
    output:
        table="results/{ds}/grid.md",
        figure=report(
            "results/{ds}/figures/grid.png",
            caption="../report/grid_figure.rst",
            category="Figures",
            subcategory="Grid search",
            labels={
                "dataset": "{ds}",
                "figure": "grid search: validation MAE per axis",
            },
        ),
        forest=report(
            "results/{ds}/figures/grid_forest.png",
            caption="../report/grid_forest.rst",
            category="Figures",
            subcategory="Grid search",
            labels={"dataset": "{ds}", "figure": "grid search: tuned − untuned"},
        ),
        page=report(
            "results/{ds}/report/grid.html",
            caption="../report/grid.rst",
            category="Results",
            subcategory="Grid search",
            labels={"dataset": "{ds}", "page": "Table 2: grid search"},
        ),
    log:
        "logs/{ds}/grid_report.log",
    conda:
        "../../environment.yml"
    params:
        variants=lambda wc: ",".join(paths.grid_variants(config, wc.ds)),
        untuned_values=lambda wc: runs.untuned_values(config, wc.ds),
        paper=lambda wc: sources.paper_dataset(config, wc.ds),
        unit=dataset("evaluate", "bootstrap_unit"),
        code=code_of("grid_report"),
        lineage=lineage_of("grid_report"),
    shell:
        "thne grid-report --dataset {wildcards.ds} --paper {params.paper}"
        " --variants {params.variants} --best {input.best}"
        " --tuned-variants {input.tuned} --tuned-predictions {input.tuned_predictions}"
        " --untuned-runs {input.untuned} --untuned-predictions {input.untuned_predictions}"
        " --untuned-values {params.untuned_values:q} --bootstrap-unit {params.unit}"
        " --manifest {input.manifest} --out {output.table}"
        " --figure {output.figure} --forest {output.forest} --page {output.page}"
        " > {log} 2>&1"

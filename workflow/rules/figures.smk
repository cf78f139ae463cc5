# The report's figures beside Figure 3: differences from t-HNE, predictions against labels,
# t-HNE's 7-class confusion, each seed's test MAE and the epoch each t-HNE seed kept.
rule report_figures:
    input:
        variants="results/{ds}/variants.json",
        manifest="data/{ds}/manifest.tsv",
        predictions=gathering(
            "results/{ds}/figures/forest.png",
            lambda wc: paths.trained_runs(config, wc.ds, "predictions.tsv"),
        ),
        histories=gathering(
            "results/{ds}/figures/forest.png",
            lambda wc: paths.run_paths(config, wc.ds, "history.tsv", ["thne"]),
        ),
        valid=gathering(
            "results/{ds}/figures/forest.png",
            lambda wc: paths.run_paths(config, wc.ds, "valid_metrics.json", ["thne"]),
        ),
    output:
        forest=report(
            "results/{ds}/figures/forest.png",
            caption="../report/forest.rst",
            category="Figures",
            subcategory="Differences from t-HNE",
            labels={"dataset": "{ds}", "figure": "differences from t-HNE"},
        ),
        predicted=report(
            "results/{ds}/figures/predicted.png",
            caption="../report/predicted.rst",
            category="Figures",
            subcategory="Predictions",
            labels={"dataset": "{ds}", "figure": "prediction against label"},
        ),
        confusion=report(
            "results/{ds}/figures/confusion.png",
            caption="../report/confusion.rst",
            category="Figures",
            subcategory="Predictions",
            labels={"dataset": "{ds}", "figure": "7-class confusion of t-HNE"},
        ),
        seeds=report(
            "results/{ds}/figures/seeds.png",
            caption="../report/seeds.rst",
            category="Figures",
            subcategory="Seeds and epochs",
            labels={"dataset": "{ds}", "figure": "test MAE per seed"},
        ),
        epochs=report(
            "results/{ds}/figures/epochs.png",
            caption="../report/epochs.rst",
            category="Figures",
            subcategory="Seeds and epochs",
            labels={"dataset": "{ds}", "figure": "epoch kept per seed"},
        ),
    log:
        "logs/{ds}/report_figures.log",
    conda:
        "../../environment.yml"
    params:
        code=code_of("report_figures"),
        lineage=lineage_of("report_figures"),
    shell:
        "thne report-figures --variants-json {input.variants} --manifest {input.manifest}"
        " --predictions {input.predictions} --histories {input.histories}"
        " --valid-metrics {input.valid} --out-forest {output.forest}"
        " --out-predicted {output.predicted} --out-confusion {output.confusion}"
        " --out-seeds {output.seeds} --out-epochs {output.epochs} > {log} 2>&1"

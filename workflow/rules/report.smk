rule variants:
    input:
        lambda wc: all_variant_runs(wc, "metrics.json"),
    output:
        "results/{ds}/variants.json",
    log:
        "logs/{ds}/variants.log",
    conda:
        "../../environment.yml"
    params:
        variants=lambda wc: ",".join(ds_config(wc, "train")["variants"]),
        code=code_version("evaluate/metrics.py", "evaluate/aggregate.py"),
    shell:
        "thne variants --runs {input} --variants {params.variants} --out {output}"
        " --dataset {wildcards.ds} > {log} 2>&1"


rule table:
    input:
        metrics="results/{ds}/metrics.json",
        visual="features/{ds}/visual.h5",
        audio="features/{ds}/audio.h5",
    output:
        "results/{ds}/table.md",
    log:
        "logs/{ds}/table.log",
    conda:
        "../../environment.yml"
    params:
        encoder=lambda wc: ds_config(wc, "text")["encoder"],
        code=code_version("evaluate/tables.py", "evaluate/paper.py"),
    shell:
        "thne table --metrics {input.metrics} --visual {input.visual} --audio {input.audio}"
        " --encoder {params.encoder:q} --out {output} --dataset {wildcards.ds} > {log} 2>&1"


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
        encoder=lambda wc: ds_config(wc, "text")["encoder"],
        code=code_version("evaluate/tables.py", "evaluate/paper.py"),
    shell:
        "thne ablation --variants-json {input.variants} --visual {input.visual}"
        " --audio {input.audio} --encoder {params.encoder:q} --out {output}"
        " --dataset {wildcards.ds} > {log} 2>&1"


# Figure 3: (a) t-HNE and, where trained, (b) the Eq. 10 residual variant.
rule loss_curves:
    input:
        lambda wc: figure_histories(wc),
    output:
        "results/{ds}/figures/loss_curves.png",
    log:
        "logs/{ds}/loss_curves.log",
    conda:
        "../../environment.yml"
    params:
        code=code_version("evaluate/figures.py"),
    shell:
        "thne loss-curves --histories {input} --out {output}"
        " --title 'Loss terms per epoch on {wildcards.ds} (mean over seeds, band: ±1 std)'"
        " > {log} 2>&1"


rule cases:
    input:
        manifest="data/{ds}/manifest.tsv",
        predictions=lambda wc: seed_runs(wc, "predictions.tsv", variant="thne"),
    output:
        "results/{ds}/cases.md",
    log:
        "logs/{ds}/cases.log",
    conda:
        "../../environment.yml"
    params:
        code=code_version("evaluate/cases.py"),
    shell:
        "thne cases --predictions {input.predictions} --manifest {input.manifest}"
        " --out {output} --dataset {wildcards.ds} > {log} 2>&1"

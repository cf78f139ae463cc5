rule evaluate:
    input:
        "results/{ds}/runs/{variant}/seed{seed}/predictions.tsv",
    output:
        "results/{ds}/runs/{variant}/seed{seed}/metrics.json",
    log:
        "logs/{ds}/evaluate/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/out/{ds}/evaluate/{variant}/seed{seed}.tsv"
    conda:
        "../../environment.yml"
    params:
        code=code_of("evaluate"),
        lineage=lineage_of("evaluate"),
    shell:
        "thne evaluate --predictions {input} --out {output} --variant {wildcards.variant}"
        " --seed {wildcards.seed} > {log} 2>&1"


rule aggregate:
    input:
        gathering(
            "results/{ds}/metrics.json",
            lambda wc: paths.run_paths(config, wc.ds, "metrics.json", ["thne"]),
        ),
    output:
        "results/{ds}/metrics.json",
    log:
        "logs/{ds}/aggregate.log",
    benchmark:
        "benchmarks/out/{ds}/aggregate.tsv"
    conda:
        "../../environment.yml"
    params:
        code=code_of("aggregate"),
        lineage=lineage_of("aggregate"),
    shell:
        "thne aggregate --runs {input} --out {output} --dataset {wildcards.ds}"
        " --variant thne > {log} 2>&1"

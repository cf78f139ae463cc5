rule tokenize:
    input:
        "data/{ds}/manifest.tsv",
    output:
        "features/{ds}/text.h5",
    log:
        "logs/{ds}/text.log",
    benchmark:
        "benchmarks/out/{ds}/text.tsv"
    conda:
        "../../environment.yml"
    params:
        encoder=lambda wc: ds_config(wc, "text")["encoder"],
        max_length=lambda wc: ds_config(wc, "text")["max_length"],
        code=stage_code("text"),
        lineage=lineage_of("text"),
    shell:
        "thne text --manifest {input} --out {output} --encoder {params.encoder:q}"
        " --max-length {params.max_length} > {log} 2>&1"

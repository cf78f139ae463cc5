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
        encoder=dataset("text", "encoder"),
        max_length=dataset("text", "max_length"),
        code=code_of("tokenize"),
        lineage=lineage_of("tokenize"),
    shell:
        "thne text --manifest {input} --out {output} --encoder {params.encoder:q}"
        " --max-length {params.max_length} > {log} 2>&1"

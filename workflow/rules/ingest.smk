checkpoint ingest:
    input:
        unpack(ingest_inputs),
    output:
        manifest="data/{ds}/manifest.tsv",
        excluded="data/{ds}/excluded.tsv",
        splits="data/{ds}/splits.json",
    log:
        "logs/{ds}/ingest.log",
    benchmark:
        "benchmarks/out/{ds}/ingest.tsv"
    wildcard_constraints:
        ds=one_of(EXTRACTED),
    conda:
        "../../environment.yml"
    threads: 2
    params:
        flags=ingest_flags,
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        media=ingest_media,
        code=stage_code("ingest"),
        lineage=lineage_of("data"),
    shell:
        "thne ingest {params.flags} --raw-dir {input.raw:q}"
        " --manifest {output.manifest} --excluded {output.excluded} --splits {output.splits}"
        " --on-bad-clip {params.on_bad_clip} --threads {threads} > {log} 2>&1"

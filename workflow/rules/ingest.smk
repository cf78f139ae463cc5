checkpoint ingest:
    input:
        unpack(lambda wc: sources.ingest_inputs(config, wc.ds)),
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
        flags=lambda wc, input: sources.ingest_flags(config, wc.ds, input.get("labels")),
        on_bad_clip=dataset("on_bad_clip"),
        media=lambda wc: sources.raw_media(sources.source(config, wc.ds).get("raw_dir")),
        code=code_of("ingest"),
        lineage=lineage_of("ingest"),
    shell:
        "thne ingest {params.flags} --raw-dir {input.raw:q}"
        " --manifest {output.manifest} --excluded {output.excluded} --splits {output.splits}"
        " --on-bad-clip {params.on_bad_clip} --threads {threads} > {log} 2>&1"

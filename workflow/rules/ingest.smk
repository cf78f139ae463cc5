rule ingest:
    input:
        ingest_input,
    output:
        manifest="data/{ds}/manifest.tsv",
        excluded="data/{ds}/excluded.tsv",
    log:
        "logs/{ds}/ingest.log",
    conda:
        "../../environment.yml"
    threads: 2
    params:
        layout=lambda wc: ds_config(wc, "source")["layout"],
        raw_dir=lambda wc: ds_config(wc, "source")["raw_dir"],
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version("data/ingest.py", "features/media.py"),
    shell:
        "thne ingest --layout {params.layout} --raw-dir {params.raw_dir:q}"
        " --manifest {output.manifest} --excluded {output.excluded}"
        " --on-bad-clip {params.on_bad_clip} --threads {threads} > {log} 2>&1"

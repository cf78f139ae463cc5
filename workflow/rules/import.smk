# Published feature sets (source.layout sdk, mmim or mmsa_pkl): one rule writes what ingest and
# feature extraction write for a dataset from media, so everything downstream runs unchanged.


rule import_features:
    input:
        unpack(lambda wc: sources.import_inputs(config, wc.ds)),
    output:
        manifest="data/{ds}/manifest.tsv",
        excluded="data/{ds}/excluded.tsv",
        splits="data/{ds}/splits.json",
        audio="features/{ds}/audio.h5",
        visual="features/{ds}/visual.h5",
    log:
        "logs/{ds}/import.log",
    benchmark:
        "benchmarks/out/{ds}/import.tsv"
    wildcard_constraints:
        ds=one_of(IMPORTED),
    conda:
        "../../environment.yml"
    params:
        layout=dataset("source", "layout"),
        dataset=lambda wc: sources.cmu_dataset(config, wc.ds),
        flags=lambda wc, input: sources.import_flags(dict(input.items())),
        on_bad_clip=dataset("on_bad_clip"),
        code=code_of("import_features"),
        lineage=lineage_of("import_features"),
    shell:
        "thne import-features --layout {params.layout} --dataset {params.dataset}"
        " {params.flags} --manifest {output.manifest} --excluded {output.excluded}"
        " --splits {output.splits} --audio {output.audio} --visual {output.visual}"
        " --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


# Like the labels download: no config value in params, so a changed mirror never deletes a
# finished download.
rule download_sequence:
    output:
        "data/{ds}/download/{role}.csd",
    log:
        "logs/{ds}/download_{role}.log",
    wildcard_constraints:
        role="words|acoustic|visual",
    run:
        flags = download_flags(
            wildcards, wildcards.role, None, f"{wildcards.role}_sha256"
        )
        shell(f"thne download {flags} --out {{output:q}} > {{log}} 2>&1")

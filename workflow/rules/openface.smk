# OpenFace 2 (visual.extractor: openface): a plan of each shard's clips, then one run per
# shard, whose CSVs the visual_shard rule reads.


rule openface_plan:
    input:
        "data/{ds}/manifest.tsv",
    output:
        directory("features/{ds}/openface/plan"),
    log:
        "logs/{ds}/openface/plan.log",
    conda:
        "../../environment.yml"
    params:
        shard_size=dataset("shard_size"),
        code=stage_code("openface_plan"),
    shell:
        "thne openface-plan --manifest {input} --shard-size {params.shard_size}"
        " --out {output} > {log} 2>&1"


# Bash only, so that with --sdm apptainer it runs inside the OpenFace image, which holds no
# Python. Its CSVs are large (714 columns per frame), hence temp(): once the shard's features
# are read, they go (--notemp keeps them).
rule openface_shard:
    input:
        plan=ancient("features/{ds}/openface/plan"),
    output:
        temp(directory("features/{ds}/openface/run/{shard}")),
    log:
        "logs/{ds}/openface/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/openface/shard{shard}.tsv"
    container:
        "docker://algebr/openface:latest"
    threads: dataset("shard_threads")
    params:
        plan=lambda wc, input: f"{input.plan}/{wc.shard}.tsv",
        binary=lambda wc: dataset("visual", "openface_bin")(wc) or "",
        # Snakemake reruns a script rule when the script is newer than the output; the content
        # hash also catches an edit that came with an older date (a copy that kept dates).
        code=stage_code(None, "thne/features/openface_run.sh"),
        media=lambda wc: shards.shard_media(config, manifest(wc), dict(wc.items())),
    script:
        "../../thne/features/openface_run.sh"

rule audio_shard:
    input:
        ancient("data/{ds}/manifest.tsv"),
    output:
        "features/{ds}/shards/audio/{shard}.h5",
    log:
        "logs/{ds}/audio/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/audio/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wc: shard_threads(wc)
    params:
        cfg=lambda wc: ds_config(wc, "audio"),
        groups=lambda wc: ",".join(ds_config(wc, "audio")["groups"]),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        media=shard_media,
        code=stage_code("audio"),
        lineage=lineage_of("shards/audio"),
    shell:
        "thne audio --manifest {input} --out {output}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --sample-rate {params.cfg[sample_rate]} --win-seconds {params.cfg[win_seconds]}"
        " --hop-seconds {params.cfg[hop_seconds]} --n-mfcc {params.cfg[n_mfcc]}"
        " --groups {params.groups} --fmin {params.cfg[fmin]} --fmax {params.cfg[fmax]}"
        " --f0-resolution {params.cfg[f0_resolution]}"
        " --threads {threads} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule visual_shard:
    input:
        unpack(visual_inputs),
    output:
        "features/{ds}/shards/visual/{shard}.h5",
    log:
        "logs/{ds}/visual/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/visual/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wc: shard_threads(wc)
    params:
        extractor=lambda wc: ds_config(wc, "visual")["extractor"],
        detect_every=lambda wc: ds_config(wc, "visual").get("detect_every", 1),
        openface=lambda wc, input: openface_flags(wc, input),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        media=shard_media,
        code=stage_code("visual"),
        lineage=lineage_of("shards/visual"),
    shell:
        "thne visual --manifest {input.manifest} --out {output}"
        " --extractor {params.extractor}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --detect-every {params.detect_every} {params.openface}"
        " --threads {threads} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


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
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
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
    threads: lambda wc: shard_threads(wc)
    params:
        plan=lambda wc, input: f"{input.plan}/{wc.shard}.tsv",
        binary=lambda wc: ds_config(wc, "visual").get("openface_bin") or "",
        # Snakemake reruns a script rule when the script is newer than the output; the content
        # hash also catches an edit that came with an older date (a copy that kept dates).
        code=file_code("thne/features/openface_run.sh"),
        media=shard_media,
    script:
        "../../thne/features/openface_run.sh"


rule merge_features:
    input:
        shard_files,
    output:
        "features/{ds}/{modality}.h5",
    log:
        "logs/{ds}/{modality}.log",
    benchmark:
        "benchmarks/out/{ds}/merge/{modality}.tsv"
    wildcard_constraints:
        ds=one_of(EXTRACTED),
    conda:
        "../../environment.yml"
    params:
        code=stage_code("merge"),
        lineage=lineage_of("features/{modality}"),
    shell:
        "thne merge --inputs {input} --out {output} > {log} 2>&1"


rule feature_stats:
    input:
        manifest="data/{ds}/manifest.tsv",
        features="features/{ds}/{modality}.h5",
    output:
        "features/{ds}/{modality}.stats.json",
    log:
        "logs/{ds}/{modality}_stats.log",
    benchmark:
        "benchmarks/out/{ds}/stats/{modality}.tsv"
    conda:
        "../../environment.yml"
    params:
        code=stage_code("stats"),
        lineage=lineage_of("stats/{modality}"),
    shell:
        "thne stats --manifest {input.manifest} --features {input.features}"
        " --out {output} > {log} 2>&1"

rule audio_shard:
    input:
        "data/{ds}/manifest.tsv",
    output:
        "features/{ds}/shards/audio/{shard}.h5",
    log:
        "logs/{ds}/audio/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/audio/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    params:
        cfg=lambda wc: ds_config(wc, "audio"),
        groups=lambda wc: ",".join(ds_config(wc, "audio")["groups"]),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version(
            "data/shards.py",
            "features/audio.py",
            "features/media.py",
            "features/store.py",
        ),
    shell:
        "thne audio --manifest {input} --out {output}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --sample-rate {params.cfg[sample_rate]} --win-seconds {params.cfg[win_seconds]}"
        " --hop-seconds {params.cfg[hop_seconds]} --n-mfcc {params.cfg[n_mfcc]}"
        " --groups {params.groups} --fmin {params.cfg[fmin]} --fmax {params.cfg[fmax]}"
        " --f0-resolution {params.cfg[f0_resolution]}"
        " --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule visual_shard:
    input:
        "data/{ds}/manifest.tsv",
    output:
        "features/{ds}/shards/visual/{shard}.h5",
    log:
        "logs/{ds}/visual/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/visual/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    params:
        extractor=lambda wc: ds_config(wc, "visual")["extractor"],
        detect_every=lambda wc: ds_config(wc, "visual").get("detect_every", 1),
        openface=lambda wc: openface_flags(ds_config(wc, "visual")),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version(
            "data/shards.py",
            "features/landmarks.py",
            "features/openface.py",
            "features/media.py",
            "features/store.py",
        ),
    shell:
        "thne visual --manifest {input} --out {output} --extractor {params.extractor}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --detect-every {params.detect_every} {params.openface}"
        " --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule merge_features:
    input:
        shard_files,
    output:
        "features/{ds}/{modality}.h5",
    log:
        "logs/{ds}/{modality}.log",
    conda:
        "../../environment.yml"
    params:
        code=code_version("features/store.py"),
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
    conda:
        "../../environment.yml"
    params:
        code=code_version("features/normalise.py", "features/store.py"),
    shell:
        "thne stats --manifest {input.manifest} --features {input.features}"
        " --out {output} > {log} 2>&1"

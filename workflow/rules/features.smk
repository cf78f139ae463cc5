# Audio and visual features, extracted in shards of videos and merged. The shard rules read
# the manifest as ancient(), with a fingerprint of their own clips and media as a param, so a
# new manifest reruns only the shards whose clips or media changed.


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
    threads: dataset("shard_threads")
    params:
        cfg=dataset("audio"),
        groups=dataset("audio", "groups", join=True),
        shard_size=dataset("shard_size"),
        on_bad_clip=dataset("on_bad_clip"),
        media=lambda wc: shards.shard_media(config, manifest(wc), dict(wc.items())),
        code=code_of("audio_shard"),
        lineage=lineage_of("audio_shard"),
    shell:
        "thne audio --manifest {input} --out {output}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --sample-rate {params.cfg[sample_rate]} --win-seconds {params.cfg[win_seconds]}"
        " --hop-seconds {params.cfg[hop_seconds]} --n-mfcc {params.cfg[n_mfcc]}"
        " --groups {params.groups} --fmin {params.cfg[fmin]} --fmax {params.cfg[fmax]}"
        " --pitch-tracker {params.cfg[pitch_tracker]}"
        " --f0-resolution {params.cfg[f0_resolution]}"
        " --threads {threads} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule visual_shard:
    input:
        unpack(lambda wc: shards.visual_inputs(config, wc.ds, wc.shard)),
    output:
        "features/{ds}/shards/visual/{shard}.h5",
    log:
        "logs/{ds}/visual/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/visual/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: dataset("shard_threads")
    params:
        extractor=dataset("visual", "extractor"),
        detect_every=dataset("visual", "detect_every"),
        openface=lambda wc, input: shards.openface_flags(config, wc.ds, wc.shard, input),
        shard_size=dataset("shard_size"),
        on_bad_clip=dataset("on_bad_clip"),
        media=lambda wc: shards.shard_media(config, manifest(wc), dict(wc.items())),
        code=code_of("visual_shard"),
        lineage=lineage_of("visual_shard"),
    shell:
        "thne visual --manifest {input.manifest} --out {output}"
        " --extractor {params.extractor}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --detect-every {params.detect_every} {params.openface}"
        " --threads {threads} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule merge_features:
    input:
        lambda wc: shards.shard_files(
            config, SHARD_FILE, manifest(wc), dict(wc.items())
        ),
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
        code=code_of("merge_features"),
        lineage=lineage_of("merge_features"),
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
        code=code_of("feature_stats"),
        lineage=lineage_of("feature_stats"),
    shell:
        "thne stats --manifest {input.manifest} --features {input.features}"
        " --out {output} > {log} 2>&1"

# New media scored by a dataset's trained runs: config section predict:, target
# results/{ds}/predict/{name}/predictions.tsv (and .../explain/ for the figures). The clips'
# features are extracted in shards with the dataset's feature config, as its own clips' are.


checkpoint predict_clips:
    input:
        predict_sources,
    output:
        manifest="data/{ds}/predict/{name}/manifest.tsv",
        excluded="data/{ds}/predict/{name}/excluded.tsv",
    log:
        "logs/{ds}/predict/{name}/clips.log",
    conda:
        "../../environment.yml"
    params:
        inputs=lambda wc: " ".join(shlex.quote(i) for i in predict_inputs(wc)),
        on_bad_clip=lambda wc: predict_entry(wc).get("on_bad_clip", "exclude"),
        code=stage_code("predict_clips"),
    shell:
        "thne predict-clips {params.inputs} --out {output.manifest}"
        " --excluded {output.excluded} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule predict_audio_shard:
    input:
        ancient("data/{ds}/predict/{name}/manifest.tsv"),
    output:
        "features/{ds}/predict/{name}/shards/audio/{shard}.h5",
    log:
        "logs/{ds}/predict/{name}/audio/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/audio/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wc: shard_threads(wc)
    params:
        cfg=lambda wc: ds_config(wc, "audio"),
        groups=lambda wc: ",".join(ds_config(wc, "audio")["groups"]),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: predict_entry(wc).get("on_bad_clip", "exclude"),
        media=predict_shard_media,
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


# OpenFace, where the dataset uses it, runs inside the shard's job (thne visual runs it).
rule predict_visual_shard:
    input:
        ancient("data/{ds}/predict/{name}/manifest.tsv"),
    output:
        "features/{ds}/predict/{name}/shards/visual/{shard}.h5",
    log:
        "logs/{ds}/predict/{name}/visual/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/visual/shard{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wc: shard_threads(wc)
    params:
        extractor=lambda wc: ds_config(wc, "visual")["extractor"],
        detect_every=lambda wc: ds_config(wc, "visual").get("detect_every", 1),
        openface=lambda wc: (
            f"--openface-groups {','.join(ds_config(wc, 'visual')['openface_groups'])}"
            f" --openface-dir features/{wc.ds}/predict/{wc.name}/openface/{wc.shard}"
        ),
        shard_size=lambda wc: config["datasets"][wc.ds]["shard_size"],
        on_bad_clip=lambda wc: predict_entry(wc).get("on_bad_clip", "exclude"),
        media=predict_shard_media,
        code=stage_code("visual"),
        lineage=lineage_of("shards/visual"),
    shell:
        "thne visual --manifest {input} --out {output}"
        " --extractor {params.extractor}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --detect-every {params.detect_every} {params.openface}"
        " --threads {threads} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule predict_merge:
    input:
        predict_shard_files,
    output:
        "features/{ds}/predict/{name}/{modality}.h5",
    log:
        "logs/{ds}/predict/{name}/{modality}.log",
    conda:
        "../../environment.yml"
    params:
        code=stage_code("merge"),
        lineage=lineage_of("features/{modality}"),
    shell:
        "thne merge --inputs {input} --out {output} > {log} 2>&1"


rule predict:
    input:
        manifest="data/{ds}/predict/{name}/manifest.tsv",
        audio="features/{ds}/predict/{name}/audio.h5",
        visual="features/{ds}/predict/{name}/visual.h5",
        models=predict_models,
    output:
        predictions="results/{ds}/predict/{name}/predictions.tsv",
        excluded="results/{ds}/predict/{name}/excluded.tsv",
    log:
        "logs/{ds}/predict/{name}/predict.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/predict.tsv"
    conda:
        "../../environment.yml"
    params:
        flags=predict_flags,
        code=stage_code("predict"),
        lineage=predict_lineage,
    shell:
        "thne predict {params.flags} --out {output.predictions}"
        " --excluded {output.excluded} > {log} 2>&1"


rule predict_explain:
    input:
        manifest="data/{ds}/predict/{name}/manifest.tsv",
        audio="features/{ds}/predict/{name}/audio.h5",
        visual="features/{ds}/predict/{name}/visual.h5",
        models=predict_models,
    output:
        directory("results/{ds}/predict/{name}/explain"),
    log:
        "logs/{ds}/predict/{name}/explain.log",
    conda:
        "../../environment.yml"
    params:
        flags=predict_flags,
        code=stage_code("predict"),
        lineage=predict_lineage,
    shell:
        "thne predict {params.flags} --out {output}/predictions.tsv"
        " --explain {output} > {log} 2>&1"

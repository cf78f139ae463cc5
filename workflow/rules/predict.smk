# New media scored by a dataset's trained runs: config section predict:, target
# results/{ds}/predict/{name}/predictions.tsv (and .../explain/ for the figures). The clips'
# features are extracted in shards with the dataset's feature config, as its own clips' are.


checkpoint predict_clips:
    input:
        lambda wc: predict.predict_sources(config, wc.ds, wc.name),
    output:
        manifest="data/{ds}/predict/{name}/manifest.tsv",
        excluded="data/{ds}/predict/{name}/excluded.tsv",
    log:
        "logs/{ds}/predict/{name}/clips.log",
    conda:
        "../../environment.yml"
    params:
        inputs=lambda wc: shlex.join(predict.predict_inputs(config, wc.ds, wc.name)),
        on_bad_clip=lambda wc: predict.predict_entry(config, wc.ds, wc.name)[
            "on_bad_clip"
        ],
        code=stage_code("predict_clips"),
    shell:
        "thne predict-clips {params.inputs} --out {output.manifest}"
        " --excluded {output.excluded} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


# The dataset's shard rules, on the clips to score, under the entry's bad-clip policy.
use rule audio_shard as predict_audio_shard with:
    input:
        ancient("data/{ds}/predict/{name}/manifest.tsv"),
    output:
        "features/{ds}/predict/{name}/shards/audio/{shard}.h5",
    log:
        "logs/{ds}/predict/{name}/audio/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/audio/shard{shard}.tsv"
    params:
        on_bad_clip=lambda wc: predict.predict_entry(config, wc.ds, wc.name)[
            "on_bad_clip"
        ],
        media=lambda wc: shards.shard_media(
            config, predict_manifest(wc), dict(wc.items())
        ),
        lineage=lineage_of("predict_audio_shard"),


# OpenFace, where the dataset uses it, runs inside the shard's job (thne visual runs it).
use rule visual_shard as predict_visual_shard with:
    input:
        manifest=ancient("data/{ds}/predict/{name}/manifest.tsv"),
    output:
        "features/{ds}/predict/{name}/shards/visual/{shard}.h5",
    log:
        "logs/{ds}/predict/{name}/visual/shard{shard}.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/visual/shard{shard}.tsv"
    params:
        openface=lambda wc: shards.predict_openface_flags(
            config, wc.ds, wc.name, wc.shard
        ),
        on_bad_clip=lambda wc: predict.predict_entry(config, wc.ds, wc.name)[
            "on_bad_clip"
        ],
        media=lambda wc: shards.shard_media(
            config, predict_manifest(wc), dict(wc.items())
        ),
        lineage=lineage_of("predict_visual_shard"),


use rule merge_features as predict_merge with:
    input:
        lambda wc: shards.shard_files(
            config, PREDICT_SHARD_FILE, predict_manifest(wc), dict(wc.items())
        ),
    output:
        "features/{ds}/predict/{name}/{modality}.h5",
    log:
        "logs/{ds}/predict/{name}/{modality}.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/merge/{modality}.tsv"
    wildcard_constraints:
        ds="|".join(DATASETS),
    params:
        lineage=lineage_of("predict_merge"),


rule predict:
    input:
        manifest="data/{ds}/predict/{name}/manifest.tsv",
        audio="features/{ds}/predict/{name}/audio.h5",
        visual="features/{ds}/predict/{name}/visual.h5",
        models=gathering(
            "results/{ds}/predict/{name}/predictions.tsv",
            lambda wc: predict.predict_models(config, wc.ds, wc.name),
        ),
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
        flags=lambda wc, input: predict.predict_flags(dict(input.items())),
        out=lambda wc, output: f"--out {output.predictions} --excluded {output.excluded}",
        code=code_of("predict"),
        lineage=lineage_of("predict"),
    shell:
        "thne predict {params.flags} {params.out} > {log} 2>&1"


# The same scores, with the figures of where the text looked in each clip.
use rule predict as predict_explain with:
    output:
        directory("results/{ds}/predict/{name}/explain"),
    log:
        "logs/{ds}/predict/{name}/explain.log",
    benchmark:
        "benchmarks/out/{ds}/predict/{name}/explain.tsv"
    params:
        out=lambda wc, output: f"--out {output}/predictions.tsv --explain {output}",

rule audio_features:
    input:
        "data/{ds}/manifest.tsv",
    output:
        "features/{ds}/audio.h5",
    log:
        "logs/{ds}/audio.log",
    benchmark:
        "benchmarks/out/{ds}/audio.tsv"
    conda:
        "../../environment.yml"
    params:
        cfg=lambda wc: ds_config(wc, "audio"),
        groups=lambda wc: ",".join(ds_config(wc, "audio")["groups"]),
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version("features/audio.py", "features/media.py", "features/store.py"),
    shell:
        "thne audio --manifest {input} --out {output}"
        " --sample-rate {params.cfg[sample_rate]} --win-seconds {params.cfg[win_seconds]}"
        " --hop-seconds {params.cfg[hop_seconds]} --n-mfcc {params.cfg[n_mfcc]}"
        " --groups {params.groups} --fmin {params.cfg[fmin]} --fmax {params.cfg[fmax]}"
        " --f0-resolution {params.cfg[f0_resolution]}"
        " --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


rule visual_features:
    input:
        "data/{ds}/manifest.tsv",
    output:
        "features/{ds}/visual.h5",
    log:
        "logs/{ds}/visual.log",
    benchmark:
        "benchmarks/out/{ds}/visual.tsv"
    conda:
        "../../environment.yml"
    params:
        extractor=lambda wc: ds_config(wc, "visual")["extractor"],
        detect_every=lambda wc: ds_config(wc, "visual").get("detect_every", 1),
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version(
            "features/landmarks.py", "features/media.py", "features/store.py"
        ),
    shell:
        "thne visual --manifest {input} --out {output} --extractor {params.extractor}"
        " --detect-every {params.detect_every} --on-bad-clip {params.on_bad_clip} > {log} 2>&1"

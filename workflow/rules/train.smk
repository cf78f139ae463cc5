rule train:
    input:
        manifest="data/{ds}/manifest.tsv",
        text="features/{ds}/text.h5",
        audio="features/{ds}/audio.h5",
        visual="features/{ds}/visual.h5",
        audio_stats="features/{ds}/audio.stats.json",
        visual_stats="features/{ds}/visual.stats.json",
    output:
        model="results/{ds}/runs/{variant}/seed{seed}/model.safetensors",
        run="results/{ds}/runs/{variant}/seed{seed}/run.json",
        history="results/{ds}/runs/{variant}/seed{seed}/history.tsv",
        predictions="results/{ds}/runs/{variant}/seed{seed}/predictions.tsv",
        valid="results/{ds}/runs/{variant}/seed{seed}/valid_metrics.json",
    log:
        "logs/{ds}/train/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/out/{ds}/train/{variant}/seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wc: ds_config(wc, "train").get("threads", 2)
    resources:
        # One GPU per training job. gpu is what a cluster profile asks for (profiles/slurm sets
        # it for the cluster's nodes); local_gpu is what the workflow profile caps at the GPUs
        # present, so as many train here at once as there are GPUs.
        gpu=train_gpus,
        checkpoint_every_s=checkpoint_every_s,
        local_gpu=train_gpus,
    params:
        flags=train_flags,
        encoder=lambda wc: ds_config(wc, "text")["encoder"],
        outdir=subpath(output.model, parent=True),
        code=stage_code("train"),
        lineage=lineage_of("run", variant=True),
    shell:
        "thne train --manifest {input.manifest} --text {input.text} --audio {input.audio}"
        " --visual {input.visual} --out-dir {params.outdir}"
        " --audio-stats {input.audio_stats} --visual-stats {input.visual_stats} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --encoder {params.encoder:q} {params.flags}"
        " --checkpoint-every-s {resources.checkpoint_every_s} --lineage {params.lineage}"
        " --threads {threads} > {log} 2>&1"

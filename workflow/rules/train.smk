rule train:
    input:
        unpack(train_inputs),
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
        # it for the cluster's nodes); gpu_slots is what the workflow profile caps at 8 per GPU
        # present, a job taking 8 / jobs_per_gpu, so that many train on each GPU here at once.
        gpu=train_gpus,
        gpu_slots=train_gpu_slots,
        jobs_per_gpu=jobs_per_gpu,
        checkpoint_every_s=checkpoint_every_s,
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
        " --jobs-per-gpu {resources.jobs_per_gpu}"
        " --threads {threads} > {log} 2>&1"

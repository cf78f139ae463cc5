rule train:
    input:
        unpack(lambda wc: paths.train_inputs(wc.ds)),
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
    threads: dataset("train", "threads")
    resources:
        # One GPU per training job. gpu is what a cluster profile asks for (profiles/slurm sets
        # it for the cluster's nodes); gpu_slots is what the workflow profile caps at 8 per GPU
        # present, a job taking 8 / jobs_per_gpu, so that many train on each GPU here at once.
        # How often a job saves its state and how many share a GPU change how it runs, not
        # what it computes: resources, which Snakemake never takes as a reason to rerun.
        gpu=lambda wc: runs.train_gpus(config, wc.ds),
        gpu_slots=lambda wc: runs.train_gpu_slots(config, wc.ds),
        jobs_per_gpu=dataset("train", "jobs_per_gpu"),
        checkpoint_every_s=dataset("train", "checkpoint_every_s"),
    params:
        flags=lambda wc: runs.run_flags(config, wc.ds, wc.variant),
        outdir=subpath(output.model, parent=True),
        code=code_of("train"),
        lineage=lineage_of("train"),
    shell:
        "thne train --manifest {input.manifest} --text {input.text} --audio {input.audio}"
        " --visual {input.visual} --out-dir {params.outdir}"
        " --audio-stats {input.audio_stats} --visual-stats {input.visual_stats}"
        " --seed {wildcards.seed} {params.flags}"
        " --checkpoint-every-s {resources.checkpoint_every_s} --lineage {params.lineage}"
        " --jobs-per-gpu {resources.jobs_per_gpu}"
        " --threads {threads} > {log} 2>&1"

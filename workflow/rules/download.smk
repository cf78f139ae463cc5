# Downloads take params from no config value: a changed mirror list, checksum or module must
# never delete a finished 126 GB archive to fetch it again (params changes rerun a rule). The
# command is built in run:, where Snakemake tracks the code, not the values (so the run:
# blocks here and in import.smk keep their text: an edit to it reruns a finished download).


rule download_archive:
    output:
        "data/{ds}/download/archive",
    log:
        "logs/{ds}/download_archive.log",
    run:
        flags = download_flags(wildcards, "url", "mirrors", "sha256")
        shell(f"thne download {flags} --out {{output:q}} > {{log}} 2>&1")


rule download_labels:
    output:
        "data/{ds}/download/labels.csd",
    log:
        "logs/{ds}/download_labels.log",
    run:
        flags = download_flags(wildcards, "labels", None, "labels_sha256")
        shell(f"thne download {flags} --out {{output:q}} > {{log}} 2>&1")


rule unpack_archive:
    input:
        lambda wc: sources.archive_path(config, wc.ds),
    output:
        directory("data/{ds}/raw"),
    log:
        "logs/{ds}/unpack.log",
    conda:
        "../../environment.yml"
    params:
        code=stage_code("unpack"),
        corrupt=lambda wc: sources.corrupt_flag(config, wc.ds),
    shell:
        "thne unpack --archive {input:q} --out {output} {params.corrupt} > {log} 2>&1"

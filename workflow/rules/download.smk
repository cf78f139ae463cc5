rule download_archive:
    output:
        "data/{ds}/download/archive",
    log:
        "logs/{ds}/download_archive.log",
    conda:
        "../../environment.yml"
    params:
        flags=lambda wc: download_flags(
            source_of(wc)["url"],
            source_of(wc).get("mirrors", []),
            source_of(wc).get("sha256"),
        ),
        code=code_version("data/download.py"),
    shell:
        "thne download {params.flags} --out {output} > {log} 2>&1"


rule download_labels:
    output:
        "data/{ds}/download/labels.csd",
    log:
        "logs/{ds}/download_labels.log",
    conda:
        "../../environment.yml"
    params:
        flags=lambda wc: download_flags(
            source_of(wc)["labels"], [], source_of(wc).get("labels_sha256")
        ),
        code=code_version("data/download.py"),
    shell:
        "thne download {params.flags} --out {output} > {log} 2>&1"


rule unpack_archive:
    input:
        archive_path,
    output:
        directory("data/{ds}/raw"),
    log:
        "logs/{ds}/unpack.log",
    conda:
        "../../environment.yml"
    params:
        code=code_version("data/unpack.py"),
    shell:
        "thne unpack --archive {input:q} --out {output} > {log} 2>&1"

# Published feature sets (source.layout sdk, mmim or mmsa_pkl): one rule writes what ingest and
# feature extraction write for a dataset from media, so everything downstream runs unchanged.


# The SDK's own URL tables name the default sequences of each dataset.
SDK_DEFAULTS = {
    "mosi": {
        "labels": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/labels/CMU_MOSI_Opinion_Labels.csd",
        "words": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/language/CMU_MOSI_TimestampedWords.csd",
        "acoustic": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/acoustic/CMU_MOSI_COVAREP.csd",
        "visual": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/visual/CMU_MOSI_VisualFacet_4.1.csd",
    },
    "mosei": {
        "labels": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/labels/CMU_MOSEI_Labels.csd",
        "words": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/language/CMU_MOSEI_TimestampedWords.csd",
        "acoustic": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/acoustic/CMU_MOSEI_COVAREP.csd",
        "visual": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/visual/CMU_MOSEI_VisualFacet42.csd",
    },
}
SDK_ROLES = ("labels", "words", "acoustic", "visual")


def fill_sdk_sources():
    """Each sdk section's sequences as configured (a URL or a local .csd), else the SDK's
    default for its dataset; in place, so every rule (downloads too) sees the same."""
    for ds in IMPORTED:
        source = config["datasets"][ds]["source"]
        if source["layout"] != "sdk":
            continue
        defaults = SDK_DEFAULTS.get(
            source.get("dataset") or config["datasets"][ds].get("base") or ds, {}
        )
        for role in SDK_ROLES:
            if not source.get(role):
                if role not in defaults:
                    raise ValueError(
                        f"datasets.{ds}.source.{role}: give the {role} sequence (.csd), "
                        "a URL or a local path"
                    )
                source[role] = defaults[role]


fill_sdk_sources()


def import_inputs(wildcards):
    source = source_of(wildcards)
    if source["layout"] != "sdk":
        if not source.get("pickles"):
            raise ValueError(
                f"datasets.{wildcards.ds}.source.pickles: the {source['layout']} layout "
                "needs its pickles (a folder for mmim, a .pkl file for mmsa_pkl)"
            )
        return {"pickles": source["pickles"]}
    inputs = {}
    for role in SDK_ROLES:
        where = source[role]
        inputs[role] = (
            f"data/{wildcards.ds}/download/{role}.csd" if is_url(where) else where
        )
    return inputs


def import_flags(wildcards, input):
    if "pickles" in input.keys():
        return f"--pickles {shlex.quote(str(input.pickles))}"
    return " ".join(f"--{r}-csd {shlex.quote(str(input[r]))}" for r in SDK_ROLES)


rule import_features:
    input:
        unpack(import_inputs),
    output:
        manifest="data/{ds}/manifest.tsv",
        excluded="data/{ds}/excluded.tsv",
        splits="data/{ds}/splits.json",
        audio="features/{ds}/audio.h5",
        visual="features/{ds}/visual.h5",
    log:
        "logs/{ds}/import.log",
    benchmark:
        "benchmarks/out/{ds}/import.tsv"
    wildcard_constraints:
        ds=one_of(IMPORTED),
    conda:
        "../../environment.yml"
    params:
        layout=lambda wc: source_of(wc)["layout"],
        dataset=cmu_dataset,
        flags=import_flags,
        on_bad_clip=lambda wc: config["datasets"][wc.ds]["on_bad_clip"],
        code=code_version(
            "stages/import_features.py",
            "data/feature_import.py",
            "data/sdk.py",
            "data/pickles.py",
            "data/ingest.py",
            "data/splits.py",
        ),
    shell:
        "thne import-features --layout {params.layout} --dataset {params.dataset}"
        " {params.flags} --manifest {output.manifest} --excluded {output.excluded}"
        " --splits {output.splits} --audio {output.audio} --visual {output.visual}"
        " --on-bad-clip {params.on_bad_clip} > {log} 2>&1"


# Like the labels download: no config value in params, so a changed mirror never deletes a
# finished download.
rule download_sequence:
    output:
        "data/{ds}/download/{role}.csd",
    log:
        "logs/{ds}/download_{role}.log",
    wildcard_constraints:
        role="words|acoustic|visual",
    run:
        url = source_of(wildcards)[wildcards.role]
        sha = source_of(wildcards).get(f"{wildcards.role}_sha256")
        shell(
            f"thne download {download_flags(url, [], sha)} --out {{output:q}} > {{log}} 2>&1"
        )

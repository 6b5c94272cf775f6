rule build_tiny_model:
    output:
        model=directory("resources/models/tiny-{family}"),
    log:
        "logs/build_tiny_model/{family}.log",
    benchmark:
        "benchmarks/build_tiny_model/{family}.tsv"
    conda:
        "../envs/swift.yaml"
    shell:
        "drawtune tiny-model --family {wildcards.family:q} --out {output.model:q} > {log:q} 2>&1"

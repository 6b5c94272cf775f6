rule build_tiny_model:
    output:
        model=directory("resources/models/tiny-{family}"),
    params:
        tiny=config["model"]["tiny"],
    log:
        "logs/build_tiny_model/{family}.log",
    benchmark:
        "benchmarks/build_tiny_model/{family}.tsv"
    conda:
        "../envs/swift.yaml"
    script:
        "../scripts/build_tiny_model.py"

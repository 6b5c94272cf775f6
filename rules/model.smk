rule build_tiny_model:
    output:
        model=directory("resources/models/tiny-{family}"),
    log:
        "logs/build_tiny_model/{family}.log",
    benchmark:
        "benchmarks/build_tiny_model/{family}.tsv"
    conda:
        "../envs/swift.yaml"
    params:
        tiny=config["model"]["tiny"],
    script:
        "../scripts/build_tiny_model.py"

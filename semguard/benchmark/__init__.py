"""The benchmark as a product command: `semguard benchmark SPEC.yaml --work DIR`.

spec: the typed spec read from YAML; preflight: every check before a stage runs; views: the
target split and the data views; plan: the protocol as stages; stages: running them, resumable,
with an ETA; score: segmenter scores on the target's labels; results: report.json / report.md;
runner: all of it in order; commands: the CLI.
"""

"""Core: what every layer uses and that imports nothing else of mlcd_actions.

Errors and exit codes, stage results, gates, ``mlcd.yaml`` config, the option spec shared by
the CLI and config validation, secrets, atomic files, progress, plugin registry, report
files. Nothing heavy is imported here.
"""

"""upflow's Pulumi program (see infra/program.py; `pulumi up` runs infra/__main__.py)."""

"""Entry point of `pulumi up` (Pulumi.yaml: ``main: infra/``)."""

import sys
from pathlib import Path

# Pulumi runs this file by path; make the repo root importable so `infra.*` and `upflow.*` resolve.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.config import load_config
from infra.program import define, export

export(define(load_config()))

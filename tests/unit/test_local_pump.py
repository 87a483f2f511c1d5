"""The local stack's schedule: the reconciler handler called every period, as a rate rule would."""

from __future__ import annotations

import itertools
import time
from typing import Any

from upflow.local.pump import reconcile_forever


def test_the_reconciler_runs_every_period_and_survives_a_failed_pass() -> None:
    calls: list[float] = []
    started = time.monotonic()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(time.monotonic() - started)
        if len(calls) == 1:
            raise RuntimeError("the local AWS restarted")  # the next pass still comes
        return {"dead_letters": 0}

    reconcile_forever(handler, 0.2, lambda: len(calls) >= 3)
    assert len(calls) == 3
    assert calls[0] >= 0.2  # first after one period, not at start-up
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(calls))

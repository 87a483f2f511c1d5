"""The chunks queue carries both kinds of parallel work: map (a chunk) and reduce (a shard).

One queue, one consumer, one DLQ: a reduce task gets the same retries, backoff, partial
batch failures and dead-lettering as a chunk, with no second pipeline to run or watch.
"""

from __future__ import annotations

import json

from processor.batch import Record
from processor.reducer import reduce_message
from processor.worker import process_message
from upflow.server.wiring import Services


def handle_work(services: Services, record: Record) -> None:
    if json.loads(record["body"]).get("type") == "reduce":
        reduce_message(services, record)
    else:
        process_message(services, record)

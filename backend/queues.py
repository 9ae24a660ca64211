"""The RQ queues, in priority order: a worker always drains interactive work first."""

from __future__ import annotations

import redis
from rq import Queue

INTERACTIVE = "lsclip-interactive"  # /predict from Label Studio: an annotator is waiting
LEARN = "lsclip-learn"  # webhook events: annotations to learn from
BULK = "lsclip-bulk"  # bulk pre-annotation of whole projects
PRIORITY = (INTERACTIVE, LEARN, BULK)


def queue(name: str, conn: redis.Redis) -> Queue:
    return Queue(name, connection=conn)


def all_queues(conn: redis.Redis) -> list[Queue]:
    return [queue(name, conn) for name in PRIORITY]

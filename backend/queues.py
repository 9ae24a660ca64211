"""The RQ queues, in priority order: a worker always drains interactive work first."""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import Job, Retry

INTERACTIVE = "lsclip-interactive"  # /predict from Label Studio: an annotator is waiting
LEARN = "lsclip-learn"  # webhook events: annotations to learn from
BULK = "lsclip-bulk"  # bulk pre-annotation of whole projects
PRIORITY = (INTERACTIVE, LEARN, BULK)


def queue(name: str, conn: redis.Redis) -> Queue:
    return Queue(name, connection=conn)


def all_queues(conn: redis.Redis) -> list[Queue]:
    return [queue(name, conn) for name in PRIORITY]


def selected(names: str) -> tuple[str, ...]:
    """Queue names, in priority order, from a comma list of short names (``interactive,learn,bulk``)."""
    short = {name.removeprefix("lsclip-"): name for name in PRIORITY}
    wanted = [n.strip().removeprefix("lsclip-") for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in short]
    if unknown or not wanted:
        raise ValueError(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(short)}")
    return tuple(name for name in PRIORITY if name.removeprefix("lsclip-") in wanted)


LEARN_JOB = "backend.jobs.learn.learn_job"


def learn_job_id(event_id: str) -> str:
    return f"learn-{event_id}"


def enqueue_learn(conn: redis.Redis, event_id: str, timeout_s: int) -> Job:
    """The learn job of a recorded event (one id per event: enqueuing it again replaces nothing twice)."""
    return queue(LEARN, conn).enqueue_call(
        LEARN_JOB, args=(event_id,), job_id=learn_job_id(event_id), timeout=timeout_s,
        result_ttl=3600, failure_ttl=7 * 24 * 3600, retry=Retry(max=3, interval=[1, 5, 30]),
    )

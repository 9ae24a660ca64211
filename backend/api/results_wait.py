"""Waiting for an RQ job's result within a deadline, across retries."""

from __future__ import annotations

import time
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.results import Result


class JobTimeout(Exception):
    """No result before the deadline."""


class JobFailed(Exception):
    """The job raised; the message is the exception's last line."""


def wait_for_result(job_id: str, conn: redis.Redis, timeout_s: float) -> Any:
    """The job's return value, blocking on its result stream; a failure that RQ will retry is waited through."""
    deadline = time.monotonic() + timeout_s
    last_id = "0-0"
    key = Result.get_key(job_id)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobTimeout(f"no result after {timeout_s:.0f} s")
        response = conn.xread({key: last_id}, block=max(1, int(remaining * 1000)))
        if not response:
            continue
        entries = response[0][1]
        last_id, payload = entries[-1]
        result = Result.restore(job_id, last_id.decode(), payload, connection=conn)
        if result.type == Result.Type.SUCCESSFUL:
            return result.return_value
        status = Job.fetch(job_id, connection=conn).get_status(refresh=True)
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED):
            continue  # RQ retries it
        message = (result.exc_string or "job failed").strip().splitlines()
        raise JobFailed(message[-1] if message else "job failed")

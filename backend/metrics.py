"""Counters and histograms kept in Redis, so every api and worker process adds to one set,
rendered in Prometheus' text exposition format by ``GET /metrics``."""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

COUNTERS = "lsclip:metrics:counters"
HIST = "lsclip:metrics:hist:"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 100.0)

HELP = {
    "lsclip_requests_total": "HTTP requests by endpoint and status",
    "lsclip_images_encoded_total": "images encoded by the model (cache misses)",
    "lsclip_image_cache_hits_total": "images served from the embedding cache",
    "lsclip_image_errors_total": "task images that could not be fetched or decoded",
    "lsclip_predictions_total": "predictions returned (one per task)",
    "lsclip_model_loads_total": "times a worker loaded the model",
    "lsclip_webhook_events_total": "webhook events recorded, by action",
    "lsclip_jobs_failed_total": "jobs that raised, by queue",
}


def _field(name: str, labels: dict[str, str] | None) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def incr(conn: redis.Redis, name: str, amount: float = 1, labels: dict[str, str] | None = None) -> None:
    """Add to a counter; metrics never fail the caller."""
    if not amount:
        return
    try:
        conn.hincrbyfloat(COUNTERS, _field(name, labels), amount)
    except redis.RedisError as exc:
        log.debug("metrics unavailable: %s", exc)


def observe(conn: redis.Redis, name: str, value: float, labels: dict[str, str] | None = None) -> None:
    """Record one observation in a fixed-bucket histogram."""
    try:
        pipe = conn.pipeline(transaction=False)
        key = HIST + name
        for bound in LATENCY_BUCKETS:
            if value <= bound:
                pipe.hincrby(key, _field(name + "_bucket", {**(labels or {}), "le": repr(bound)}), 1)
        pipe.hincrby(key, _field(name + "_bucket", {**(labels or {}), "le": "+Inf"}), 1)
        pipe.hincrbyfloat(key, _field(name + "_sum", labels), value)
        pipe.hincrby(key, _field(name + "_count", labels), 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.debug("metrics unavailable: %s", exc)


def counter_value(conn: redis.Redis, name: str, labels: dict[str, str] | None = None) -> float:
    raw = conn.hget(COUNTERS, _field(name, labels))
    return float(raw) if raw else 0.0


def render(conn: redis.Redis, gauges: dict[str, list[tuple[dict[str, str], float]]]) -> str:
    """All counters, histograms and the given gauges as Prometheus text."""
    lines: list[str] = []
    counters = sorted((k.decode(), float(v)) for k, v in conn.hgetall(COUNTERS).items())
    seen: set[str] = set()
    for field, value in counters:
        base = field.split("{", 1)[0]
        if base not in seen:
            seen.add(base)
            lines.append(f"# HELP {base} {HELP.get(base, base)}")
            lines.append(f"# TYPE {base} counter")
        lines.append(f"{field} {_num(value)}")
    for key in sorted(k.decode() for k in conn.scan_iter(match=HIST + "*")):
        base = key[len(HIST):]
        lines.append(f"# TYPE {base} histogram")
        rows = {k.decode(): float(v) for k, v in conn.hgetall(key).items()}
        for field in sorted(rows, key=_histogram_order):
            lines.append(f"{field} {_num(rows[field])}")
    for name, samples in gauges.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            lines.append(f"{_field(name, labels)} {_num(value)}")
    return "\n".join(lines) + "\n"


def _histogram_order(field: str) -> tuple:
    labels = field.split("{", 1)[1] if "{" in field else ""
    other = ",".join(p for p in labels.rstrip("}").split(",") if not p.startswith("le="))
    kind = 0 if "_bucket" in field else (1 if "_sum" in field else 2)
    le = 0.0
    if 'le="' in field:
        raw = field.split('le="', 1)[1].split('"', 1)[0]
        le = float("inf") if raw == "+Inf" else float(raw)
    return (other, kind, le)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)

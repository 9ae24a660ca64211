"""``lsclip``: the one console command (serve, api, worker, and the Label Studio-side tools)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from backend.logging_setup import setup_logging
from backend.settings import get_settings, reset_settings

log = logging.getLogger("lsclip")


def _api(host: str, port: int, processes: int, threads: int) -> int:
    """Run the HTTP service under gunicorn (threaded workers: /predict requests wait on jobs)."""
    from gunicorn.app.base import BaseApplication

    settings = get_settings()

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", processes)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", int(settings.predict_timeout_s) + 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())

        def load(self):
            from backend.api.app import create_app

            return create_app()

    Gunicorn().run()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    return _api(args.host, args.port, args.processes, args.threads)


def cmd_worker(args: argparse.Namespace) -> int:
    from backend.worker import run_worker

    from backend.queues import selected

    try:
        names = selected(args.queues)
    except ValueError as exc:
        log.error("--queues: %s", exc)
        return 2
    return run_worker(burst=args.burst, name=args.name, queue_names=names)


def cmd_serve(args: argparse.Namespace) -> int:
    """API + worker(s) + an embedded Redis when REDIS_URL is unset, supervised in one command."""
    settings = get_settings()
    embedded = None
    if not settings.redis_url:
        from backend.embedded_redis import start_embedded

        embedded = start_embedded(settings.embedded_redis_path or None)
        os.environ["REDIS_URL"] = f"unix://{embedded.socket_file}"
        reset_settings()
    env = dict(os.environ)
    worker_cmd = [sys.executable, "-m", "backend.cli", "worker"]
    api_cmd = [sys.executable, "-m", "backend.cli", "api", "--host", args.host, "--port", str(args.port)]
    workers = [subprocess.Popen(worker_cmd, env=env) for _ in range(args.workers)]
    api = subprocess.Popen(api_cmd, env=env)
    log.info("serving on http://%s:%d with %d worker(s); Redis: %s", args.host, args.port, args.workers,
             "embedded" if embedded is not None else "REDIS_URL")
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    restarts: list[float] = []
    given_up: set[int] = set()  # workers that could not load the model: not restarted
    try:
        while not stopping:
            time.sleep(0.5)
            if api.poll() is not None:
                log.error("api exited with %s", api.returncode)
                code = api.returncode or 1
                break
            for i, proc in enumerate(workers):
                if i in given_up or proc.poll() is None:
                    continue
                if proc.returncode == 3:
                    log.error("worker could not load the model (see above); the api stays up and /health says why")
                    given_up.add(i)
                else:
                    now = time.monotonic()
                    restarts[:] = [t for t in restarts if now - t < 60] + [now]
                    if len(restarts) > 5:
                        log.error("workers keep exiting (%d restarts in a minute); stopping", len(restarts))
                        code = 1
                        stopping = True
                        break
                    log.warning("worker exited with %s; restarting it", proc.returncode)
                    workers[i] = subprocess.Popen(worker_cmd, env=env)
    finally:
        for proc in [api, *workers]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [api, *workers]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if embedded is not None:
            from backend.embedded_redis import stop_embedded

            stop_embedded(embedded)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsclip", description="Label Studio ML backend for zero-shot image pre-annotation")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="api + worker(s) + embedded Redis (when REDIS_URL is unset) on one machine")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9090)
    serve.add_argument("--workers", type=int, default=get_settings().workers, help="worker processes (LSCLIP_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    api = sub.add_parser("api", help="the HTTP service (gunicorn)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=9090)
    api.add_argument("--processes", type=int, default=2)
    api.add_argument("--threads", type=int, default=16)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="an RQ worker that keeps the model resident")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument("--name", default=None)
    worker.add_argument("--queues", default="interactive,learn,bulk",
                        help="queues to work, in priority order (e.g. 'interactive' for a worker that keeps "
                             "annotators' latency low while others run bulk work)")
    worker.set_defaults(func=cmd_worker)

    from backend.cli_tools import add_tool_commands

    add_tool_commands(sub)
    from plugin.cli import add_plugin_commands

    add_plugin_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging(get_settings().log_level)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

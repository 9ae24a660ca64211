"""``python -m bench``: the performance tables of issue 7 (targets 1-6) in one command, on this machine.

Runs ``bench.throughput`` (targets 1, 2, 4) then ``bench.service`` (targets 3, 5, 6); each writes its section of
docs/BENCHMARKS.md. The GPU table comes from ``bash bench/gpu.sh`` on a GPU machine; accuracy and learning
curves from ``python -m bench.accuracy`` and ``python -m bench.learning``.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> int:
    for module in ("bench.throughput", "bench.service"):
        env = {**os.environ, "LSCLIP_BENCH_COMMAND": f"python -m bench (its {module} step)"}
        code = subprocess.call([sys.executable, "-m", module], env=env)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())

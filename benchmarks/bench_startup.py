"""Start-up time of `catalog --help`, against a bare interpreter and against `import torch`.

The CLI imports torch only for discovery; this shows what that saves and checks that
`catalog --help` really leaves torch unimported. Figures, not a timed test:

    python benchmarks/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

PROBE = """
import json, sys
sys.argv = ["catalog", "--help"]
from cli.app import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in ("torch", "transformer_lens", "sqlalchemy") if m in sys.modules)),
      file=sys.stderr)
"""


def median_seconds(cmd: list[str], runs: int) -> float:
    """Median wall time of `runs` runs of `cmd` (output discarded), after one warm-up run."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    script = shutil.which("catalog")
    catalog = [script] if script else [sys.executable, "-m", "cli.app"]
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    heavy = json.loads(probe.stderr.strip().splitlines()[-1])

    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    help_ = median_seconds([*catalog, "--help"], args.runs)
    torch = median_seconds([sys.executable, "-c", "import torch"], args.runs)
    print(f"runs per command: {args.runs} (median wall time)")
    print(f"python -c pass           {bare * 1000:8.0f} ms")
    print(f"catalog --help           {help_ * 1000:8.0f} ms   ({help_ / bare:.1f}x a bare interpreter)")
    print(f"python -c 'import torch' {torch * 1000:8.0f} ms   (catalog --help takes "
          f"{help_ / torch:.2f}x of it)")
    print(f"heavy modules imported by catalog --help: {', '.join(heavy) or 'none'}")
    if "torch" in heavy:
        print("FAIL: catalog --help imports torch")
        sys.exit(1)


if __name__ == "__main__":
    main()

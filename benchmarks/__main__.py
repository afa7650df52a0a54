"""Every benchmark, one after another; each writes its section of docs/benchmarks.md.

python -m benchmarks        (make bench; about ten minutes on 2 cores)
python -m benchmarks NAME   (one of them, e.g. upload_memory)
"""

import importlib
import sys

from benchmarks import infra, projection, state_table, workers


def main() -> None:
    if len(sys.argv) > 1:
        importlib.import_module(f"benchmarks.{sys.argv[1]}").main(sys.argv[2:])
        return
    state_table.main([])
    projection.main(["--write"])
    workers.main()
    infra.main(["--write"])


if __name__ == "__main__":
    main()

"""Every benchmark, one after another; each writes its section of docs/benchmarks.md.

python -m benchmarks                (make bench; about fifteen minutes on 2 cores)
python -m benchmarks NAME [ARGS]    (e.g. pass [--json], faults, upload_memory, id_sources,
                                     watch_cost, wide_grid)
"""

import importlib
import sys

# The benchmark names that are not module names.
ALIASES = {"pass": "pass_sim"}


def main(argv: list[str]) -> None:
    if argv:
        # Imported when run: one benchmark does not load the others' clients (or the CDK's).
        module = importlib.import_module(f"benchmarks.{ALIASES.get(argv[0], argv[0])}")
        module.main(argv[1:])
        return
    from benchmarks import faults, infra, pass_sim, projection, state_table, watch_cost, workers

    state_table.main([])
    projection.main(["--write"])
    workers.main()
    infra.main(["--write"])
    pass_sim.main([])
    faults.main([])
    watch_cost.main(["--write"])


if __name__ == "__main__":
    main(sys.argv[1:])

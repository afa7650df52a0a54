"""Every benchmark, one after another; each writes its section of docs/benchmarks.md.

python -m benchmarks                (make bench; about fifteen minutes on 2 cores)
python -m benchmarks pass [--json]  (the pass simulation alone; under 5 minutes)
"""

import sys


def main(argv: list[str]) -> None:
    # Imported when run: one benchmark does not load the others' clients (or the CDK's).
    from benchmarks import pass_sim

    if argv and argv[0] == "pass":
        pass_sim.main(argv[1:])
        return
    if argv:
        raise SystemExit(f"unknown benchmark {argv[0]!r}: run all (no argument) or 'pass'")
    from benchmarks import infra, projection, state_table, workers

    state_table.main([])
    projection.main(["--write"])
    workers.main()
    infra.main(["--write"])
    pass_sim.main([])


if __name__ == "__main__":
    main(sys.argv[1:])

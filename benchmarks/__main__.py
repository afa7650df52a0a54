"""Every benchmark, one after another; each writes its section of docs/benchmarks.md.

python -m benchmarks        (make bench; about ten minutes on 2 cores)
"""

from benchmarks import infra, projection, state_table, workers


def main() -> None:
    state_table.main([])
    projection.main(["--write"])
    workers.main()
    infra.main(["--write"])


if __name__ == "__main__":
    main()

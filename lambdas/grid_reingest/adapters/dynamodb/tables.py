"""The state table's parts put together on one handle: as the workers use it (WorkerTable) and
as the operators' commands use it (OperatorTable).

Each part does one job (reads.py, claims.py, upload.py, scans.py, resets.py);
these hold the parts and name the calls their users make. Each such call is
the part's own method, bound: one definition of it, found in one file.
"""

from __future__ import annotations

from typing import Any, Self

from grid_reingest.adapters.dynamodb.claims import Claims
from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.resets import Resets
from grid_reingest.adapters.dynamodb.scans import Scans
from grid_reingest.adapters.dynamodb.upload import Uploads


class WorkerTable:
    """The state table as the workers use it: the ClaimStore and PassFacts ports."""

    def __init__(self, name: str, client: Any, *, max_workers: int = 16) -> None:
        self.handle = TableHandle(name, client, max_workers=max_workers)
        self.name, self.client = name, client
        self.reads = reads = StateReads(self.handle)
        self.claims = claims = Claims(self.handle, reads)
        # The ClaimStore port: the claims' writes, and two reads of the index.
        self.claim_stream, self.claim, self.apply = claims.claim_stream, claims.claim, claims.apply
        self.has_any, self.sample = reads.has_any, reads.sample
        self.oldest_change = reads.oldest_change
        # The PassFacts port (has_any too).
        self.counts, self.errors = reads.counts, reads.errors


class OperatorTable:
    """The whole state table, as the operator commands use it: checks and reads, uploads,
    scans, resets; and the workers' claims and moves, which tests and benchmarks use to put
    items in a state as a worker would."""

    def __init__(self, name: str, client: Any, *, max_workers: int = 16) -> None:
        handle = self.handle = TableHandle(name, client, max_workers=max_workers)
        self.name, self.client = name, client
        self.check, self.close = handle.check, handle.close
        reads = self.reads = StateReads(handle)
        self.get, self.count, self.counts = reads.get, reads.count, reads.counts
        self.has_any, self.errors = reads.has_any, reads.errors
        self.uploads = Uploads(handle, reads)
        self.put_new = self.uploads.put_new
        self.scans = Scans(handle)
        self.scan, self.scan_rows = self.scans.scan, self.scans.scan_rows
        self.resets = Resets(handle, reads)
        self.reset, self.reset_items = self.resets.reset, self.resets.reset_items
        self.claims = Claims(handle, reads)
        self.claim, self.apply = self.claims.claim, self.claims.apply
        self.oldest_change = reads.oldest_change

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A stand-in for S3's ListObjectsV2 over a sorted list of keys, with a fixed round trip.

moto's ListObjectsV2 walks every key of the bucket for each page, so a listing
benchmark against it measures moto. This server answers from a sorted list
(bisect), as S3 does from its index, with each answer held back by
`--latency` seconds: what a benchmark measures is then the client's design.
It runs in its own process (its own core), pages of XML as S3 writes them
(Key, LastModified, ETag, Size, StorageClass), with Prefix, Delimiter,
StartAfter, ContinuationToken, MaxKeys and EncodingType=url.

    python -m devtools.s3_stub --port 8000 --keys 1000000 --latency 0.01
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

BUCKET = "images"
PAGE = 1000


def grid_keys(n: int, seed: str = "bench") -> list[str]:
    """The sorted keys of `n` Grid originals (a/b/c/d/e/f/<id>), ids made from `seed`."""
    ids = (
        hashlib.sha1(f"{seed} {i}".encode(), usedforsecurity=False).hexdigest() for i in range(n)
    )
    return sorted("/".join(i[:6]) + "/" + i for i in ids)


class ListingServer:
    """A threaded server on 127.0.0.1:`port` answering ListObjectsV2 over `keys`."""

    def __init__(self, keys: list[str], port: int, latency_s: float) -> None:
        self.keys = keys
        self.latency_s = latency_s
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                started = time.monotonic()
                body, status = server.answer(self.path)
                rest = server.latency_s - (time.monotonic() - started)
                if rest > 0:
                    time.sleep(rest)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.http.daemon_threads = True

    def answer(self, path: str) -> tuple[bytes, int]:
        """The XML body and status for one request's path and query."""
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if "list-type" not in query:
            return b"<?xml version='1.0'?><Ok/>", 200
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        after = query.get("continuation-token") or query.get("start-after") or ""
        max_keys = min(int(query.get("max-keys", PAGE)), PAGE)
        at = bisect.bisect_right(self.keys, after) if after else 0
        at = max(at, bisect.bisect_left(self.keys, prefix))
        contents: list[str] = []
        folders: list[str] = []
        last = ""
        while at < len(self.keys) and len(contents) + len(folders) < max_keys:
            key = self.keys[at]
            if not key.startswith(prefix):
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                folder = key[: cut + len(delimiter)]
                folders.append(folder)
                last = folder
                # every key of the folder sorts before the folder with its last char bumped
                at = bisect.bisect_left(self.keys, folder[:-1] + chr(ord(folder[-1]) + 1))
                continue
            contents.append(key)
            last = key
            at += 1
        truncated = at < len(self.keys) and self.keys[at].startswith(prefix)
        return _xml(prefix, delimiter, contents, folders, more=truncated, last=last), 200


def _xml(
    prefix: str, delimiter: str, contents: list[str], folders: list[str], *, more: bool, last: str
) -> bytes:
    items = "".join(
        f"<Contents><Key>{quote(k, safe='/')}</Key>"
        "<LastModified>2026-11-28T10:00:00.000Z</LastModified>"
        f"<ETag>&quot;{k[-32:]}&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>"
        "<ChecksumType>FULL_OBJECT</ChecksumType><Size>2483921</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for k in contents
    )
    common = "".join(
        f"<CommonPrefixes><Prefix>{escape(f)}</Prefix></CommonPrefixes>" for f in folders
    )
    token = f"<NextContinuationToken>{escape(last)}</NextContinuationToken>" if more else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><Prefix>{escape(prefix)}</Prefix>"
        f"<Delimiter>{escape(delimiter)}</Delimiter><KeyCount>{len(contents) + len(folders)}"
        f"</KeyCount><MaxKeys>{PAGE}</MaxKeys><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{items}{common}"
        "</ListBucketResult>"
    ).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=int, required=True, help="Grid originals in the bucket")
    parser.add_argument("--latency", type=float, default=0.01, help="seconds per answer")
    args = parser.parse_args(argv)
    ListingServer(grid_keys(args.keys), args.port, args.latency).http.serve_forever()


if __name__ == "__main__":
    main()

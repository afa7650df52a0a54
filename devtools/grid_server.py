"""A simulated Grid over real HTTP: every service reingestion calls, on one local server.

One ThreadingHTTPServer on 127.0.0.1 (a free port) serves each Grid service
under its own path prefix, so each has its own base URL
(`http://127.0.0.1:PORT/loader`, `.../leases`, ...). Images are generated
from their id — the same id always gives the same image and service data —
in the shapes the Grid writes (dates with assorted UTC offsets, fields no
reingestion code knows about, soft-deleted images, images with nothing in
any data service). Example::

    with GridSim(latency={"image-loader": 0.2}, default_latency=0.05) as sim:
        settings = sim.settings()          # a GridSettings pointing at the sim
        sim.fail(image_id, "leases", 503, times=2)
        ...
        assert sim.counts["leases"] == 3

Endpoints (names used by `fail`, `slow`, `malformed`, `drop`, `trickle`, `oversized`
and `endpoint_counts`):

| endpoint      | service         | path (after the service prefix)       |
|---------------|-----------------|---------------------------------------|
| image         | media-api       | GET /images/{id}                      |
| soft_delete   | media-api       | GET /images/{id}/softDeletedMetadata  |
| projection    | image-loader    | GET /images/project/{id}              |
| root          | leases          | GET /                                 |
| leases        | leases          | GET /leases/media/{id}                |
| collections   | collections     | GET /images/{id}                      |
| edits         | metadata-editor | GET /edits/{id}                       |
| syndication   | metadata-editor | GET /metadata/{id}/syndication        |
| usages        | usage           | GET /usages/media/{id}                |
| crops         | cropper         | GET /crops/{id}                       |
"""

from __future__ import annotations

import base64
import functools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from devtools.loader_capacity import LoaderCapacity
from grid_reingest.settings import SERVICES, GridSettings, load

DEFAULT_KEY = "sim-grid-key-0123456789"

# Every Grid service's health route (its Management controller): no key needed.
HEALTH_ROUTE = "/management/healthcheck"
PREFIXES = {
    "media-api": "/media-api",
    "image-loader": "/loader",
    "leases": "/leases",
    "collections": "/collections",
    "metadata-editor": "/metadata-editor",
    "usage": "/usage",
    "cropper": "/cropper",
}

# endpoint -> (service, path pattern); the id is the pattern's group.
ENDPOINTS: dict[str, tuple[str, re.Pattern[str]]] = {
    "soft_delete": ("media-api", re.compile(r"/images/([^/]+)/softDeletedMetadata")),
    "image": ("media-api", re.compile(r"/images/([^/]+)")),
    "projection": ("image-loader", re.compile(r"/images/project/([^/]+)")),
    "root": ("leases", re.compile(r"/?()")),
    "leases": ("leases", re.compile(r"/leases/media/([^/]+)")),
    "collections": ("collections", re.compile(r"/images/([^/]+)")),
    "edits": ("metadata-editor", re.compile(r"/edits/([^/]+)")),
    "syndication": ("metadata-editor", re.compile(r"/metadata/([^/]+)/syndication")),
    "usages": ("usage", re.compile(r"/usages/media/([^/]+)")),
    "crops": ("cropper", re.compile(r"/crops/([^/]+)")),
}

DROP = -1  # the "status" of a request answered by closing the connection

KNOWN_ERROR_BODY = {
    "errorKey": "image-projection-failed",
    "errorMessage": "org.im4java.core.CommandException: convert: "
    "Corrupt JPEG data: premature end of data segment",
}
UNKNOWN_ERROR_BODY = {"errorKey": "internal-error", "errorMessage": "Something went wrong"}
# Base64 of random bytes: ~6 bits of entropy per character, so gzip keeps ~3/4 of
# it — 1.5 MB of it makes a record well above Kinesis's 1 MiB.
HUGE_FIELD_CHARS = 1_500_000


@dataclass(frozen=True)
class Profile:
    """What the data services know of one image (the numbers are how many)."""

    leases: int = 0
    crops: int = 0
    usages: int = 0
    collections: int = 0
    edits: bool = False
    syndication: bool = False
    soft_delete: str = "none"  # "none" (404), "deleted", "restored" (isDeleted false)


BARE = Profile()  # in no data service at all


@dataclass
class Rule:
    """An answer for one (id, endpoint) instead of the normal one.

    `status` None keeps the normal answer (after `delay`); `times` None: every time.
    """

    status: int | None = None
    body: Any = None  # bytes as they are; anything else as JSON; None: an empty body
    delay: float = 0.0
    times: int | None = None
    drop: bool = False  # close the connection without answering
    header_interval: float = 0.0  # status line and headers one byte at a time, this far apart


@dataclass(frozen=True)
class SlowHeaders:
    """An answer whose status line and headers go out a byte every `interval` seconds."""

    body: Any
    interval: float


@dataclass(frozen=True)
class Stream:
    """A body written as it goes: `size` bytes (`data` repeated), `chunk` bytes every
    `interval` seconds; with `declare_length` False, no Content-Length (ended by closing)."""

    size: int
    data: bytes = b" "
    chunk: int = 64 * 1024
    interval: float = 0.0
    declare_length: bool = True

    def chunks(self) -> Any:
        """The body, a chunk at a time (never all of it in memory)."""
        sent = 0
        while sent < self.size:
            size = min(self.chunk, self.size - sent)
            start = sent % len(self.data)
            part = (self.data[start:] + self.data * (size // len(self.data) + 1))[:size]
            sent += size
            yield part


class GridSim:
    """The simulated Grid. Start and stop it with `with`, or start()/stop().

    Per-id behaviours: `missing` (image-loader and media-api answer 404),
    `huge` (an incompressible field puts the record above 1 MiB), `profiles`
    (override what the data services hold), `fail` / `slow` / `malformed` /
    `drop` / `trickle` / `oversized` (any endpoint), `known_loader_error` /
    `unknown_loader_error` / `answers_with` (another id's image) for image-loader.
    media-api's `GET /images/{id}`: 200 for every id not `missing` while
    `index_all` is True (the default), else only for ids in `indexed`.
    Counters: `counts` per service, `endpoint_counts` per endpoint, `image_counts` per
    (endpoint, image id), `peak` (the most requests in flight at once, per service and
    "total"), `keys_seen`.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_KEY,
        latency: Mapping[str, float] | None = None,
        default_latency: float = 0.0,
        loader: LoaderCapacity | None = None,
    ) -> None:
        self.api_keys: set[str] = {api_key}
        # image-loader's slots and queue: a projection that is answered 200 takes a slot for
        # its image's time (on top of `latency`); None: no limit.
        self.loader = loader
        # Services whose health route (`GET /management/healthcheck`, no key) answers 503.
        self.unhealthy: set[str] = set()
        self.api_key = api_key
        self.latency: dict[str, float] = {s: default_latency for s in SERVICES}
        self.latency.update(latency or {})
        self.missing: set[str] = set()
        self.huge: set[str] = set()
        self.indexed: set[str] = set()
        self.index_all = True
        self.profiles: dict[str, Profile] = {}
        self.counts: Counter[str] = Counter()
        self.endpoint_counts: Counter[str] = Counter()
        # Requests per (endpoint, image id): which images were projected, or asked about.
        self.image_counts: Counter[tuple[str, str]] = Counter()
        self.peak: Counter[str] = Counter()
        self.keys_seen: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._rules: dict[tuple[str, str], Rule] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_class(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle and wiring ---------------------------------------------------

    def start(self) -> GridSim:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GridSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def base_url(self, service: str) -> str:
        """One service's base URL, e.g. base_url("image-loader")."""
        return self.url + PREFIXES[service]

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment variables pointing a worker at the sim (every URL, a plain key)."""
        variables = {SERVICES[s][0]: self.base_url(s) for s in SERVICES}
        variables["GRID_API_KEY"] = self.api_key
        variables.update(overrides)
        return variables

    def settings(self, **overrides: str) -> GridSettings:
        """GridSettings pointing at the sim; `overrides` are more variables, e.g. timeouts."""
        return load(GridSettings, self.env(**overrides))

    # -- behaviours ----------------------------------------------------------------

    def fail(
        self,
        image_id: str,
        endpoint: str,
        status: int,
        body: Any = None,
        times: int | None = None,
    ) -> None:
        """`endpoint` answers `status` for this id (`times` times, or always)."""
        if body is None and status != 404:
            body = {"errorKey": "sim-failure", "errorMessage": f"simulated {status}"}
        self._rule(image_id, endpoint, Rule(status, body, times=times))

    def slow(self, image_id: str, endpoint: str, seconds: float) -> None:
        """`endpoint` waits `seconds` more before answering this id."""
        self._rule(image_id, endpoint, Rule(delay=seconds))

    def drop(self, image_id: str, endpoint: str, times: int | None = None) -> None:
        """`endpoint` closes the connection without answering (`times` times, or always)."""
        self._rule(image_id, endpoint, Rule(drop=True, times=times))

    def malformed(self, image_id: str, endpoint: str) -> None:
        """`endpoint` answers 200 with a body cut off mid-JSON."""
        self._rule(image_id, endpoint, Rule(200, b'{"data": {"leases": [{"id": "l1", '))

    def trickle(self, image_id: str, endpoint: str, body: bytes, interval: float) -> None:
        """`endpoint` answers 200 with `body` (its length declared), one byte every `interval`."""
        self._rule(image_id, endpoint, Rule(200, Stream(len(body), body, 1, interval)))

    def trickle_headers(self, image_id: str, endpoint: str, interval: float) -> None:
        """`endpoint` answers 200 normally, but its status line and headers go out one byte every
        `interval` (each byte well within a socket's read timeout)."""
        self._rule(image_id, endpoint, Rule(header_interval=interval))

    def oversized(
        self, image_id: str, endpoint: str, size: int, *, declare_length: bool = True
    ) -> None:
        """`endpoint` answers 200 with `size` bytes (written in chunks, never held in memory);
        `declare_length` False: without Content-Length, as a streamed answer."""
        self._rule(image_id, endpoint, Rule(200, Stream(size, declare_length=declare_length)))

    def answers_with(self, image_id: str, other_id: str) -> None:
        """image-loader answers the projection of `image_id` with the image of `other_id`."""
        self._rule(image_id, "projection", Rule(200, _image_json(other_id, other_id in self.huge)))

    def known_loader_error(self, image_id: str) -> None:
        """image-loader fails with a known, permanent error (org.im4java.core.CommandException)."""
        self.fail(image_id, "projection", 500, KNOWN_ERROR_BODY)

    def unknown_loader_error(self, image_id: str) -> None:
        """image-loader fails with a 500 nobody recognises."""
        self.fail(image_id, "projection", 500, UNKNOWN_ERROR_BODY)

    def _rule(self, image_id: str, endpoint: str, rule: Rule) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
        with self._lock:
            self._rules[(image_id, endpoint)] = rule

    def _take_rule(self, image_id: str, endpoint: str) -> Rule | None:
        with self._lock:
            rule = self._rules.get((image_id, endpoint))
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._rules[(image_id, endpoint)]
            return rule

    # -- what the Grid holds -----------------------------------------------------------

    def profile(self, image_id: str) -> Profile:
        """What the data services hold for this id: set in `profiles`, else drawn from the id."""
        return self.profiles.get(image_id) or drawn_profile(image_id)

    def image(self, image_id: str) -> dict[str, Any]:
        """image-loader's projection of this id (a fresh copy)."""
        return json.loads(_image_json(image_id, image_id in self.huge))

    def service_data(self, image_id: str) -> dict[str, Any]:
        """The `data` each data service answers with, None where it answers 404."""
        return service_data(image_id, self.profile(image_id))

    def is_indexed(self, image_id: str) -> bool:
        """Whether media-api's `GET /images/{id}` answers 200."""
        return image_id not in self.missing and (self.index_all or image_id in self.indexed)

    # -- one request ---------------------------------------------------------------------

    def _answer(  # noqa: PLR0911 (one table of answers, in the order the Grid decides them)
        self, path: str, key: str | None
    ) -> tuple[int, Any, float, str | None]:
        """(status, body, delay, service) for one GET."""
        service, rest = _split(path)
        if service is None:
            return 404, {"errorKey": "not-found", "errorMessage": f"no service at {path}"}, 0, None
        if rest == HEALTH_ROUTE:
            # As the Grid's Management controller: no key, nothing counted.
            if service in self.unhealthy:
                return 503, {"message": "unhealthy"}, 0, None
            return 200, {"message": "ok"}, 0, None
        delay = self.latency[service]
        with self._lock:
            self.counts[service] += 1
            if key is not None:
                self.keys_seen[key] += 1
        endpoint, image_id = _route(service, rest)
        if endpoint is not None:
            with self._lock:
                self.endpoint_counts[endpoint] += 1
                self.image_counts[endpoint, image_id] += 1
        if key not in self.api_keys:
            return (
                401,
                {"errorKey": "authentication-failure", "errorMessage": "Invalid API key"},
                delay,
                service,
            )
        if endpoint is None:
            return 404, {"errorKey": "not-found", "errorMessage": "no such route"}, delay, service
        rule = self._take_rule(image_id, endpoint)
        if rule is not None:
            delay += rule.delay
            if rule.drop:
                return DROP, None, delay, service
            if rule.status is not None:
                return rule.status, rule.body, delay, service
        status, body = self._normal(endpoint, image_id)
        if rule is not None and rule.header_interval:
            return status, SlowHeaders(body, rule.header_interval), delay, service
        return status, body, delay, service

    def _normal(self, endpoint: str, image_id: str) -> tuple[int, Any]:
        if endpoint == "root":
            return 200, {"data": {"description": "This is the Leases API"}, "links": []}
        if endpoint in ("projection", "image"):
            return self._image(endpoint, image_id)
        data = service_data(image_id, self.profile(image_id))[endpoint]
        if data is None:
            return 404, _NOT_FOUND_BODIES[endpoint]
        if endpoint == "usages":
            return 200, {"length": len(data), "data": data}
        return 200, {"data": data}

    def _image(self, endpoint: str, image_id: str) -> tuple[int, Any]:
        if endpoint == "projection" and image_id in self.missing:
            return 404, {"errorKey": "not-found", "errorMessage": "image not found"}
        if endpoint == "image" and not self.is_indexed(image_id):
            return 404, {
                "errorKey": "image-not-found",
                "errorMessage": f"No image found with the given id {image_id}",
            }
        image = _image_json(image_id, image_id in self.huge)
        if endpoint == "projection":
            return 200, image
        # media-api wraps the image in an Argo entity.
        return 200, b'{"data":' + image + b',"links":[]}'

    def _enter(self, service: str) -> None:
        with self._lock:
            self._in_flight[service] += 1
            self._in_flight["total"] += 1
            for name in (service, "total"):
                self.peak[name] = max(self.peak[name], self._in_flight[name])

    def _leave(self, service: str) -> None:
        with self._lock:
            self._in_flight[service] -= 1
            self._in_flight["total"] -= 1


# What each data service answers for an image it has nothing on (None: an empty body).
_NOT_FOUND_BODIES: dict[str, Any] = {
    "collections": {"errorKey": "not-found", "errorMessage": "No collections found"},
    "edits": None,
    "syndication": None,
    "usages": {"errorKey": "not-found", "errorMessage": "No usages found."},
    "soft_delete": {"errorKey": "not-found", "errorMessage": "No soft-deleted metadata found"},
    "leases": {"errorKey": "not-found", "errorMessage": "No leases found"},
    "crops": {"errorKey": "not-found", "errorMessage": "No crops found"},
}


def _split(path: str) -> tuple[str | None, str]:
    for service, prefix in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service, path[len(prefix) :]
    return None, path


def _route(service: str, rest: str) -> tuple[str | None, str]:
    for endpoint, (owner, pattern) in ENDPOINTS.items():
        if owner == service and (match := pattern.fullmatch(rest)):
            return endpoint, unquote(match.group(1))
    return None, ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients connect at once (a batch's worth of images, seven calls each).
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is part of the tests, not an error.
        pass


def _handler_class(sim: GridSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every response.
        disable_nagle_algorithm = True
        timeout = 60  # idle keep-alive connections are dropped after this

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            status, body, delay, service = sim._answer(path, self.headers.get("X-Gu-Media-Key"))
            if service is not None:
                sim._enter(service)
            try:
                if delay:
                    time.sleep(delay)
                if status == 200 and service == "image-loader" and sim.loader is not None:
                    endpoint, image_id = _route(service, _split(path)[1])
                    if endpoint == "projection" and not sim.loader.serve(image_id):
                        status, body = 503, {"errorKey": "busy", "errorMessage": "queue full"}
                if status == DROP:
                    self.close_connection = True
                    return
                self._send(status, body)
            finally:
                if service is not None:
                    sim._leave(service)

        def _refuse(self) -> None:
            self._send(405, {"errorKey": "method-not-allowed", "errorMessage": self.command})

        do_POST = do_PUT = do_DELETE = do_HEAD = _refuse

        def _send(self, status: int, body: Any) -> None:
            if isinstance(body, Stream):
                self._stream(status, body)
                return
            if isinstance(body, SlowHeaders):
                self._slow_headers(status, body)
                return
            if body is None:
                payload = b""
            elif isinstance(body, bytes):
                payload = body
            else:
                payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.argo+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _slow_headers(self, status: int, slow: SlowHeaders) -> None:
            payload = slow.body if isinstance(slow.body, bytes) else json.dumps(slow.body).encode()
            head = (
                f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode()
            self.close_connection = True
            try:
                for byte in head:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(slow.interval)
                self.wfile.write(payload)
            except OSError:
                pass  # the client hung up at its deadline

        def _stream(self, status: int, body: Stream) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if body.declare_length:
                self.send_header("Content-Length", str(body.size))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            for part in body.chunks():
                if body.interval:
                    self.wfile.flush()
                    time.sleep(body.interval)
                self.wfile.write(part)

    return Handler


# -- the images and what the services know of them -----------------------------------------

_OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
_OFFSETS += [timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=1))]
_PEOPLE = ["Jane Doe", "Sam Smith", "Ali Khan", "Mei Chen", "Olu Ade"]
_CITIES = [("London", "England", "United Kingdom"), ("Sydney", "NSW", "Australia")]
_CITIES += [("New York", "NY", "United States"), ("Lagos", "Lagos", "Nigeria")]
_RIGHTS: list[dict[str, Any]] = [
    {"category": "agency", "supplier": "Getty Images", "suppliersCollection": "AFP"},
    {"category": "staff-photographer", "photographer": "Jane Doe", "publication": "The Guardian"},
    {"category": "handout"},
    {"category": "PR Image", "restrictions": "Use only with the launch story"},
    {"category": "screengrab", "source": "BBC"},
    {"category": "creative-commons", "licence": "CC BY 4.0", "source": "Flickr"},
    {},  # NoRights
]


def drawn_profile(image_id: str) -> Profile:
    """The profile an id gets unless set: about one image in six has nothing anywhere."""
    rng = random.Random(f"profile:{image_id}")
    if rng.random() < 0.15:
        return BARE
    return Profile(
        leases=rng.choice([0, 0, 1, 2, 3]),
        crops=rng.choice([0, 1, 1, 2, 4]),
        usages=rng.choice([0, 1, 2, 5]),
        collections=rng.choice([0, 1, 2]),
        edits=rng.random() < 0.8,
        syndication=rng.random() < 0.3,
        soft_delete=rng.choices(["none", "deleted", "restored"], [0.8, 0.1, 0.1])[0],
    )


def _date(rng: random.Random, after: datetime | None = None, colon_utc: bool = False) -> str:
    """An instant after `after` (or in 2015-2024), written with a random UTC offset."""
    start = after or datetime(2015, 1, 1, tzinfo=UTC)
    moment = start + timedelta(
        seconds=rng.randint(60, 3 * 365 * 86400), milliseconds=rng.randint(0, 999)
    )
    text = moment.astimezone(rng.choice(_OFFSETS)).isoformat(timespec="milliseconds")
    return text if colon_utc else text.replace("+00:00", "Z")


def _upload_time(image_id: str) -> datetime:
    rng = random.Random(f"upload:{image_id}")
    return datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 6 * 365 * 86400))


@functools.lru_cache(maxsize=128)
def _image_json(image_id: str, huge: bool) -> bytes:
    return json.dumps(generate_image(image_id, huge), separators=(",", ":")).encode("utf-8")


def generate_image(image_id: str, huge: bool = False) -> dict[str, Any]:
    """image-loader's projection of `image_id`: the same id always gives the same image."""
    rng = random.Random(f"image:{image_id}")
    uploaded = _upload_time(image_id)
    width, height = rng.choice([(4000, 3000), (1920, 1080), (800, 1200)])
    mime = rng.choice(["image/jpeg", "image/jpeg", "image/png", "image/tiff"])
    person = rng.choice(_PEOPLE)
    city, state, country = rng.choice(_CITIES)
    bucket = "http://media-service-test-imagebucket.s3.amazonaws.com"
    metadata: dict[str, Any] = {
        "dateTaken": _date(rng),
        "description": f"A view of {city} at dusk",
        "credit": rng.choice(["Getty Images", "The Guardian", "Reuters"]),
        "byline": person,
        "title": f"{city} skyline",
        "copyright": f"{person} {uploaded.year}",
        "source": "sim",
        "keywords": rng.sample(["city", "dusk", "skyline", "travel", "weather"], 2),
        "subLocation": "Riverside",
        "city": city,
        "state": state,
        "country": country,
        "subjects": ["environment"],
        "peopleInImage": rng.sample(_PEOPLE, 1),
    }
    if rng.random() < 0.5:
        metadata["domainMetadata"] = {
            "editorial": {"priority": rng.randint(1, 5), "desk": "news"},
            "archive": {"box": f"B{rng.randint(1, 99)}"},
        }
    rights = rng.choice(_RIGHTS)
    asset = {
        "file": f"{bucket}/{image_id[:1]}/{image_id}",
        "size": rng.randint(200_000, 20_000_000),
        "mimeType": mime,
        "dimensions": {"width": width, "height": height},
    }
    image: dict[str, Any] = {
        "id": image_id,
        "uploadTime": uploaded.astimezone(rng.choice(_OFFSETS)).isoformat(timespec="milliseconds"),
        "uploadedBy": rng.choice(["jane.doe@guardian.co.uk", "getty-feed", "reuters-feed"]),
        "lastModified": uploaded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "identifiers": {"picdarUrn": f"GD{rng.randint(10**8, 10**9)}"},
        "uploadInfo": {"filename": f"IMG_{rng.randint(1000, 9999)}.jpg"},
        "source": asset,
        "thumbnail": {
            "file": f"{bucket}/thumbs/{image_id}",
            "size": rng.randint(5000, 50000),
            "mimeType": "image/jpeg",
            "dimensions": {"width": 256, "height": 192},
        },
        "fileMetadata": {
            "iptc": {"By-line": person, "City": city, "Country/Primary Location Name": country},
            "exif": {"Make": "Canon", "Model": "EOS 5D Mark IV"},
            "exifSub": {"Date/Time Original Composite": "2019-06-01T10:00:00.000Z"},
            "xmp": {"dc:creator": person, "photoshop:City": city},
            "icc": {"Profile Description": "sRGB IEC61966-2.1"},
            "getty": {},
            "colourModel": "RGB",
            "colourModelInformation": {"bitsPerSample": "8"},
        },
        "metadata": metadata,
        "originalMetadata": json.loads(json.dumps(metadata)),
        "usageRights": rights,
        "originalUsageRights": rights,
        "exports": [],
        "usages": [],
        "leases": {"leases": [], "lastModified": None},
        "collections": [],
        # A field no reingestion code knows: the Grid adds fields over time.
        "simFutureField": {"version": 3, "scores": [rng.random() for _ in range(3)]},
    }
    if mime == "image/png":
        image["optimisedPng"] = {"file": f"{bucket}/optimised/{image_id}", "mimeType": "image/png"}
    if huge:
        noise = random.Random(f"huge:{image_id}").randbytes(HUGE_FIELD_CHARS * 3 // 4)
        image["fileMetadata"]["xmp"]["sim:noise"] = base64.b64encode(noise).decode("ascii")
    return image


def service_data(image_id: str, profile: Profile) -> dict[str, Any]:
    """Each data service's `data` for an image with this profile (None: a 404)."""
    rng = random.Random(f"services:{image_id}")
    uploaded = _upload_time(image_id)
    leases: list[dict[str, Any]] = [
        {
            "id": f"lease-{i}",
            "leasedBy": "rights@guardian.co.uk",
            "startDate": _date(rng, uploaded),
            "access": rng.choice(["allow-use", "deny-use", "allow-syndication"]),
            "notes": "simulated",
            "mediaId": image_id,
            "createdAt": _date(rng, uploaded),
            "active": True,
        }
        for i in range(profile.leases)
    ]
    newest_lease = max(leases, key=lambda lease: _instant(lease["createdAt"]), default=None)
    data: dict[str, Any] = {
        "leases": {
            "leases": leases,
            "lastModified": newest_lease["createdAt"] if newest_lease else None,
        },
        "crops": [
            {
                "id": f"0_0_{w}_{w * 3 // 5}",
                "author": "picture.desk@guardian.co.uk",
                "date": _date(rng, uploaded),
                "specification": {
                    "uri": f"https://api.media.test.example/images/{image_id}",
                    "bounds": {"x": 0, "y": 0, "width": w, "height": w * 3 // 5},
                    "aspectRatio": "5:3",
                    "type": "crop",
                },
                "master": {"file": f"https://crops.example/{image_id}/{w}.jpg", "size": w * 100},
                "assets": [],
            }
            for w in (1000, 2000, 500, 1500)[: profile.crops]
        ],
        "collections": [
            {
                "path": path,
                "pathId": "/".join(path).lower(),
                "description": path[-1],
                "actionData": {
                    "author": "editor@guardian.co.uk",
                    "date": _date(rng, uploaded, True),
                },
            }
            for path in (["News", "UK"], ["Features"])[: profile.collections]
        ]
        or None,
        "usages": [
            {
                "uri": f"https://media-usage.test.example/usages/{image_id}%2F{i}",
                "data": {
                    "id": f"composer/{image_id}/{i}",
                    "references": [{"type": "frontend", "uri": f"https://theguardian.com/{i}"}],
                    "platform": rng.choice(["digital", "print"]),
                    "media": "image",
                    "status": rng.choice(["published", "pending", "removed"]),
                    "dateAdded": _date(rng, uploaded),
                    "lastModified": _date(rng, uploaded),
                },
            }
            for i in range(profile.usages)
        ]
        or None,
        "edits": None,
        "syndication": None,
        "soft_delete": None,
    }
    if profile.edits:
        edits: dict[str, Any] = {
            "archived": rng.random() < 0.3,
            "labels": rng.sample(["sport", "cover", "archive"], rng.randint(0, 2)),
            "metadata": {
                "title": "Edited title",
                "description": None,  # explicitly null: keeps the image's description
                "keywords": ["edited"],
            },
            "lastModified": _date(rng, uploaded),
        }
        if rng.random() < 0.5:
            edits["metadata"]["domainMetadata"] = {"editorial": {"priority": 1}}
        if rng.random() < 0.4:
            edits["usageRights"] = {"category": "handout"}
        if rng.random() < 0.3:
            edits["photoshoot"] = {"title": "Spring shoot"}
        data["edits"] = edits
    if profile.syndication:
        data["syndication"] = {
            "published": _date(rng, uploaded, True),
            "suppliers": [{"supplierName": "Getty", "supplierId": "1", "prAgreement": False}],
            "rights": [{"rightCode": "SYN", "acquired": True, "properties": []}],
            "isInferred": False,
        }
    if profile.soft_delete != "none":
        data["soft_delete"] = {
            "id": image_id,
            "isDeleted": profile.soft_delete == "deleted",
            "deleteTime": _date(rng, uploaded),
            "deletedBy": "editor@guardian.co.uk",
        }
    return data


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

"""The Grid API key: where the workers' own comes from, and whether a caller's is good.

In AWS the key lives in an SSM SecureString parameter or a Secrets Manager
secret, read through Powertools Parameters, which caches it for
`CACHE_SECONDS`: image-projection asks on every invocation, so a rotated key
reaches it within minutes without a read per invocation; batch-check reads it
once per container. Local runs may give it plainly. Example::

    key = load_api_key(settings.grid)

Nothing here logs a key or puts one in a message.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters

from grid_reingest.settings import GRID_API_KEY_PARAMETER, GRID_API_KEY_SECRET, GridSettings

if TYPE_CHECKING:
    from grid_reingest.adapters.grid import KeyCheck

# How long a key read from SSM / Secrets Manager, or a caller's key found good
# or bad, is trusted before asking again.
CACHE_SECONDS = 300
# Callers' keys remembered at most (a bound against a caller cycling keys).
MAX_REMEMBERED_KEYS = 1024


class ApiKeyError(RuntimeError):
    """The key could not be read, or is empty; the message names where it was looked for."""


def load_api_key(
    settings: GridSettings, provider: Any | None = None, max_age: int = CACHE_SECONDS
) -> str:
    """The Grid API key from the source the settings name.

    `provider`: a Powertools SSMProvider or SecretsProvider (matching the source),
    e.g. `SSMProvider(boto3_client=client)` in tests; by default Powertools' own,
    shared by every call so that its cache works across invocations.
    """
    if settings.api_key_parameter:
        name, where = settings.api_key_parameter, f"SSM parameter {settings.api_key_parameter!r}"
        read = (
            (lambda: provider.get(name, max_age=max_age, decrypt=True))
            if provider
            else (lambda: parameters.get_parameter(name, decrypt=True, max_age=max_age))
        )
    elif settings.api_key_secret:
        name, where = settings.api_key_secret, f"secret {settings.api_key_secret!r}"
        read = (
            (lambda: provider.get(name, max_age=max_age))
            if provider
            else (lambda: parameters.get_secret(name, max_age=max_age))
        )
    elif settings.api_key:
        return settings.api_key
    else:
        raise ApiKeyError(
            f"no Grid API key configured: set {GRID_API_KEY_PARAMETER.name} "
            f"or {GRID_API_KEY_SECRET.name}"
        )
    try:
        value = read()
    except parameters.GetParameterError as error:
        raise ApiKeyError(f"cannot read the Grid API key from {where}: {error}") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str) or not value.strip():
        raise ApiKeyError(f"the Grid API key in {where} is empty")
    return value.strip()


def with_fresh_key[R](
    call: Callable[[str], R],
    refused: Callable[[R], bool],
    read_key: Callable[[int], str],
    max_age: int = CACHE_SECONDS,
) -> R:
    """`call(key)` with the key as read now (from a cache up to `max_age` seconds old); when
    the answer says the key is `refused`, the key is read again uncached and, if it changed
    (rotated within the cache's time), `call` is made again with it. Both workers' rule for
    a 401 or 403: a refused key is the system's failure only once the newest key is refused.

    Example::

        answer = with_fresh_key(
            lambda key: grid.with_key(key).image(image_id),
            lambda response: response.status in (401, 403),
            lambda max_age: load_api_key(settings.grid, max_age=max_age),
        )
    """
    key = read_key(max_age)
    answer = call(key)
    if refused(answer):
        fresh = read_key(0)
        if fresh != key:
            answer = call(fresh)
    return answer


def key_digest(api_key: str) -> str:
    """What stands for a key wherever one must be remembered: its SHA-256."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class KeyValidator:
    """Asks the Grid whether a caller's key is good, remembering the verdict for a while.

    `check` is e.g. `lambda key: client.with_key(key).validate_key()`. Verdicts are
    remembered by the key's digest, never the key; an unknown verdict (the Grid
    did not answer) is not remembered.
    """

    def __init__(
        self,
        check: Callable[[str], KeyCheck],
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._verdicts: dict[str, tuple[float, KeyCheck]] = {}
        self._lock = threading.Lock()

    def validate(self, api_key: str) -> KeyCheck:
        """The Grid's verdict on `api_key`, from memory when recent enough."""
        digest = key_digest(api_key)
        now = self._clock()
        with self._lock:
            remembered = self._verdicts.get(digest)
        if remembered and remembered[0] > now:
            return remembered[1]
        verdict = self._check(api_key)
        if verdict.valid is not None:
            with self._lock:
                if len(self._verdicts) >= MAX_REMEMBERED_KEYS:
                    self._verdicts = {d: v for d, v in self._verdicts.items() if v[0] > now}
                    if len(self._verdicts) >= MAX_REMEMBERED_KEYS:
                        self._verdicts.clear()
                self._verdicts[digest] = (now + self._ttl, verdict)
        return verdict

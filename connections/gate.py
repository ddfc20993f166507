"""The gate in front of each account of a system: its rate budget and its circuit, shared by every worker.

Every call a connector makes to a system goes through the gate of the module's account (`http.request(gate=...)`):

- **Rate budget.** A system takes so many calls from one account in a window (Dinero 100 a minute per organisation,
  Shopify's bucket of 40 refilling at 2 a second, e-conomic's fair use a day): `System.budget`. The gate keeps a
  sliding window of the account's calls in Redis (every worker takes from the same one; with the embedded defaults,
  one per process), and a call waits for room: briefly in place, else the transfer waits for its turn without
  spending an attempt (the turns a batch's share of the window apart, so waiting transfers come back one after
  another as room frees up), so a busy shop's backlog slows down instead of being locked out, and other tenants'
  transfers, on other accounts, pass it. A 429 shuts the gate for its Retry-After, for every worker.
- **Circuit.** When an account stops answering (refused connections, timeouts, 5xx: FAILURES in a row), the gate
  shuts: its transfers wait without spending attempts, one call in PROBE_SECONDS goes through as a probe, and the
  first answer opens the gate again. The module notes since when it has not answered (Home and the error digest
  say so, once), and the waiting transfers say it in the Log.

- **Refusals.** Systems take access away from an app that goes on sending requests they refuse (Dinero: "many
  400, 401 or 403 answers"). When an account refuses REFUSALS requests within REFUSAL_WINDOW, the gate notes its
  module as stopped: the transfers to and from it are held (not failed), Home and the error digest say why, and a
  successful test of the connection, or credentials saved again, lets them go.

Attempts are spent only on answers that concern the record itself (a 4xx, or a 5xx while the account otherwise
answers).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.core.cache import cache
from django.utils import timezone

from connections.systems import Budget, Wait

if TYPE_CHECKING:
    from connections.models import Module

FAILURES = 3  # calls in a row that get no answer (or a 5xx) before the gate shuts
FAILURE_MEMORY = 120  # seconds a failure is remembered for the count
PROBE_SECONDS = 30.0  # while shut, one call this often finds out whether the account answers again
# A call waits this long for room in the budget; longer, and its transfer waits instead (a worker asleep on one
# account's budget would hold the other tenants' transfers behind it).
WAIT_IN_PLACE = 0.25
PAUSE_WITHOUT_RETRY_AFTER = 10.0  # a 429 that does not say how long
# A process takes up to this many calls of a budget at once (a tenth of it at most) and makes them within
# PERMIT_SECONDS, asking Redis once for them: the gate costs a round trip per BATCH calls, not per call.
BATCH = 10
PERMIT_SECONDS = 1.0
PATIENCE = 120.0  # how long a job's fetch waits in place for room in a budget
REFUSED = frozenset({400, 401, 403})  # the answers a system counts against an app
REFUSALS = 20  # refused requests of one account within REFUSAL_WINDOW seconds before IEX stops calling it
REFUSAL_WINDOW = 600
_waits_in_place: ContextVar[float | None] = ContextVar("waits_in_place", default=None)
# The module whose account last answered 401 or 403 here (a transfer's send may call both of its systems).
last_refusal: ContextVar[int | None] = ContextVar("last_refusal", default=None)


@contextmanager
def patient(seconds: float = PATIENCE) -> Iterator[None]:
    """Calls made inside wait this long in place for room in their budget (a job's fetch: it has no transfer to
    wait in)."""
    token = _waits_in_place.set(seconds)
    try:
        yield
    finally:
        _waits_in_place.reset(token)


class Backend(Protocol):
    def take(self, key: str, calls: int, seconds: float, batch: int) -> tuple[float, float | None, int, int]:
        """(0.0: room for calls now, else the seconds until there is), when the gate shut (None: open), how many
        calls in a row got no answer, and how many calls (up to `batch`) were counted for the caller to make. `calls`
        0: no budget. One round trip."""
        ...

    def pause(self, key: str, seconds: float) -> None: ...

    def queue(self, key: str, earliest: float, spacing: float) -> float:
        """A turn for a caller that cannot wait in place: in `earliest` seconds, or `spacing` after the last turn
        given, whichever is later; the seconds until it."""
        ...

    def failed(self, key: str) -> tuple[bool, float | None]:
        """Count a call that got no answer: (whether this one shut the gate, when it shut: None while open)."""
        ...

    def answered(self, key: str) -> bool:
        """A call got an answer: the failures are forgotten; True when this one opened a shut gate."""
        ...

    def probe(self, key: str) -> bool:
        """True for the one caller that may try the shut account now."""
        ...

    def refused(self, key: str) -> int:
        """Count a refused request: how many there were in the account's current REFUSAL_WINDOW."""
        ...

    def forgive(self, key: str) -> None:
        """Forget the account's refused requests (it lets IEX in again)."""
        ...


class Gate:
    """The gate of one module's account (every module of the same account, in any integration, shares it)."""

    def __init__(self, module: Module) -> None:
        system = module.system
        self.label = system.label
        self.budget: Budget | None = system.budget
        self.key = f"gate:{system.kind}:{module.account_key}"
        self.module_id = module.pk
        self.failures = 0  # calls in a row without an answer, as the last `before` saw them

    def before(self) -> None:
        """Called before each request: raises Wait while the account cannot take it."""
        if _permits.use(self.key):
            self.failures = 0
            return
        backend = _backend()
        calls, seconds = (self.budget.calls, self.budget.seconds) if self.budget else (0, 0.0)
        batch = max(1, min(BATCH, calls // 10)) if calls else BATCH
        waited = 0.0
        while True:
            delay, shut, self.failures, granted = backend.take(self.key, calls, seconds, batch)
            if not delay and shut is None and not self.failures and granted > 1:
                _permits.keep(self.key, granted - 1)
            if shut is not None and not backend.probe(self.key):
                raise Wait(self.silent(shut), PROBE_SECONDS)
            if not delay:
                return
            patience = _waits_in_place.get()
            if waited + delay > (WAIT_IN_PLACE if patience is None else patience):
                # In line behind the transfers already waiting, a batch's share of the window apart: they come back
                # one after another as room frees up, not all at once to find it taken.
                turn = backend.queue(self.key, delay, batch * seconds / calls if calls else 0.0)
                raise Wait(
                    f"{self.label}'s rate budget for this account is used up for now ({calls} calls in "
                    f"{seconds:g} s): waiting for it",
                    turn,
                )
            time.sleep(delay)
            waited += delay

    def after(self, status: int | None, retry_after: float | None) -> None:
        """Called after each request with the answer's status (None: no answer). May raise Wait: the request got
        429, or its failure shut the gate (the transfer waits, without spending an attempt)."""
        backend = _backend()
        if status is None or status >= 500 or status == 429:
            _permits.drop(self.key)  # what was taken for this process is not to be used now
        if status is not None and status < 500:
            if self.failures and backend.answered(self.key):  # only when there is something to forget
                _note(self.module_id, None)
            if status in (401, 403):
                last_refusal.set(self.module_id)
            if status in REFUSED and backend.refused(self.key) >= REFUSALS:
                _stop(self.module_id, self.label)
            if status == 429:
                pause = retry_after if retry_after is not None else PAUSE_WITHOUT_RETRY_AFTER
                backend.pause(self.key, pause)
                raise Wait(f"{self.label} asked IEX to slow down (429): waiting {pause:.0f} s", pause)
            return
        newly, since = backend.failed(self.key)
        if newly:
            _note(self.module_id, timezone.now())
        if since is not None:
            raise Wait(self.silent(since), PROBE_SECONDS)

    def forgive(self) -> None:
        _backend().forgive(self.key)

    def silent(self, since: float) -> str:
        return (
            f"{self.label} has not answered since {datetime.fromtimestamp(since, UTC):%H:%M} UTC: waiting for it"
        )


class _Permits:
    """Calls a process took from an account's budget and has not made yet: good for PERMIT_SECONDS (so the window
    counts them within that of when they are made, and a gate shut elsewhere is seen that soon)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[str, tuple[int, float]] = {}

    def use(self, key: str) -> bool:
        with self.lock:
            left, until = self.kept.get(key, (0, 0.0))
            if left <= 0 or until < time.monotonic():
                return False
            self.kept[key] = (left - 1, until)
            return True

    def keep(self, key: str, count: int) -> None:
        with self.lock:
            self.kept[key] = (count, time.monotonic() + PERMIT_SECONDS)

    def drop(self, key: str) -> None:
        with self.lock:
            self.kept.pop(key, None)


_permits = _Permits()


def _note(module_id: int | None, since: datetime | None) -> None:
    """Note on the module since when its account has not answered (None: it answers again)."""
    from connections.models import Module

    if module_id is None:
        return
    modules = Module.objects.filter(pk=module_id)
    if since is None:
        modules.exclude(unreachable_since=None).update(unreachable_since=None)
    else:
        modules.filter(unreachable_since=None).update(unreachable_since=since)


def _stop(module_id: int | None, label: str) -> None:
    """Note on the module that IEX stopped calling its account, which refused too many requests."""
    from connections.models import Module

    if module_id is None:
        return
    message = (
        f"IEX stopped calling {label}: it refused {REFUSALS} requests within {REFUSAL_WINDOW // 60} minutes (400, "
        f"401 or 403), and {label} may take IEX's access away if that goes on. The failed transfers in the Log say "
        f"what it refused; fix that, then test the connection to let the waiting transfers go"
    )
    if module := Module.objects.filter(pk=module_id).first():
        module.credentials_refused(message)


# --- where the gate's state lives ------------------------------------------------------------------------------

_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local window = tonumber(ARGV[2])
local shut = redis.call('GET', KEYS[3]) or ''
local failures = redis.call('GET', KEYS[4]) or '0'
local calls = tonumber(ARGV[1])
local batch = tonumber(ARGV[4])
if calls == 0 or shut ~= '' then return {'0', shut, failures, tostring(batch)} end
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return {tostring(paused - now), shut, failures, '0'} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local room = calls - redis.call('ZCARD', KEYS[1])
if room > 0 then
  local n = math.min(room, batch)
  for i = 1, n do redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i) end
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
  return {'0', shut, failures, tostring(n)}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {tostring(tonumber(oldest[2]) + window - now + 0.001), shut, failures, '0'}
"""
_FAILED = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
local newly = 0
if n >= tonumber(ARGV[1]) then
  local now_parts = redis.call('TIME')
  if redis.call('SET', KEYS[2], now_parts[1], 'NX') then newly = 1 end
end
return {newly, redis.call('GET', KEYS[2]) or ''}
"""

_QUEUE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local turn = math.max(now + tonumber(ARGV[1]), last + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], tostring(turn), 'PX', math.ceil((turn - now) * 1000) + 1000)
return tostring(turn - now)
"""


class RedisBackend:
    """Shared by every worker: the call times of each account in a sorted set, its failures and its shut time."""

    def __init__(self, client: Any) -> None:
        self.redis = client
        self.take_script = client.register_script(_TAKE)
        self.failed_script = client.register_script(_FAILED)
        self.queue_script = client.register_script(_QUEUE)
        self.calls = itertools.count()
        self.prefix = f"{threading.get_ident()}:{time.time_ns()}:"

    def take(self, key: str, calls: int, seconds: float, batch: int) -> tuple[float, float | None, int, int]:
        member = f"{self.prefix}{next(self.calls)}"
        keys = [f"{key}:calls", f"{key}:paused", f"{key}:shut", f"{key}:failures"]
        delay, shut, failures, granted = self.take_script(keys=keys, args=[calls, seconds, member, batch])
        return float(delay), float(shut) if shut else None, int(failures), int(granted)

    def queue(self, key: str, earliest: float, spacing: float) -> float:
        return float(self.queue_script(keys=[f"{key}:queue"], args=[earliest, spacing]))

    def pause(self, key: str, seconds: float) -> None:
        seconds_now, micros = self.redis.time()
        until = seconds_now + micros / 1_000_000 + seconds
        self.redis.set(f"{key}:paused", str(until), ex=int(seconds) + 2)

    def failed(self, key: str) -> tuple[bool, float | None]:
        newly, shut = self.failed_script(keys=[f"{key}:failures", f"{key}:shut"], args=[FAILURES, FAILURE_MEMORY])
        return bool(newly), float(shut) if shut else None

    def answered(self, key: str) -> bool:
        pipe = self.redis.pipeline()
        pipe.delete(f"{key}:failures")
        pipe.delete(f"{key}:shut")
        return bool(pipe.execute()[1])

    def probe(self, key: str) -> bool:
        return bool(self.redis.set(f"{key}:probe", "1", nx=True, px=int(PROBE_SECONDS * 1000)))

    def refused(self, key: str) -> int:
        pipe = self.redis.pipeline()
        pipe.incr(f"{key}:refused")
        pipe.expire(f"{key}:refused", REFUSAL_WINDOW, nx=True)
        return int(pipe.execute()[0])

    def forgive(self, key: str) -> None:
        self.redis.delete(f"{key}:refused")


class LocalBackend:
    """The same rules in one process (the embedded defaults have no Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, deque[float]] = {}
        self.paused: dict[str, float] = {}
        self.failures: dict[str, tuple[int, float]] = {}
        self.shut: dict[str, float] = {}
        self.probed: dict[str, float] = {}
        self.refusals: dict[str, tuple[int, float]] = {}  # count, when its window started
        self.turns: dict[str, float] = {}  # the last turn given to a caller waiting for room

    def take(self, key: str, calls: int, seconds: float, batch: int) -> tuple[float, float | None, int, int]:
        now = time.time()
        with self.lock:
            shut, failures = self.shut.get(key), self.failures.get(key, (0, now))[0]
            if not calls or shut is not None:
                return 0.0, shut, failures, batch
            if (paused := self.paused.get(key, 0.0)) > now:
                return paused - now, shut, failures, 0
            recent = self.calls.setdefault(key, deque())
            while recent and recent[0] <= now - seconds:
                recent.popleft()
            if (room := calls - len(recent)) > 0:
                granted = min(room, batch)
                recent.extend([now] * granted)
                return 0.0, shut, failures, granted
            return recent[0] + seconds - now + 0.001, shut, failures, 0

    def queue(self, key: str, earliest: float, spacing: float) -> float:
        now = time.time()
        with self.lock:
            turn = max(now + earliest, self.turns.get(key, 0.0) + spacing)
            self.turns[key] = turn
            return turn - now

    def pause(self, key: str, seconds: float) -> None:
        with self.lock:
            self.paused[key] = time.time() + seconds

    def failed(self, key: str) -> tuple[bool, float | None]:
        now = time.time()
        with self.lock:
            count, last = self.failures.get(key, (0, now))
            count = count + 1 if now - last < FAILURE_MEMORY else 1
            self.failures[key] = (count, now)
            newly = count >= FAILURES and key not in self.shut
            if newly:
                self.shut[key] = now
            return newly, self.shut.get(key)

    def answered(self, key: str) -> bool:
        with self.lock:
            self.failures.pop(key, None)
            return self.shut.pop(key, None) is not None

    def probe(self, key: str) -> bool:
        now = time.time()
        with self.lock:
            if now - self.probed.get(key, 0.0) < PROBE_SECONDS:
                return False
            self.probed[key] = now
            return True

    def refused(self, key: str) -> int:
        now = time.time()
        with self.lock:
            count, started = self.refusals.get(key, (0, now))
            count, started = (count + 1, started) if now - started < REFUSAL_WINDOW else (1, now)
            self.refusals[key] = (count, started)
            return count

    def forgive(self, key: str) -> None:
        with self.lock:
            self.refusals.pop(key, None)


_local = LocalBackend()
_redis: RedisBackend | None = None


def _backend() -> Backend:
    """Redis when the cache is Redis (every worker shares it), else this process's own."""
    global _redis
    client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client_of is None:
        return _local
    if _redis is None:
        _redis = RedisBackend(client_of(None, write=True))
    return _redis


def forget() -> None:
    """Tests: start from open gates with empty budgets."""
    global _redis, _local, _permits
    _local = LocalBackend()
    _permits = _Permits()
    if _redis is not None:
        for key in _redis.redis.scan_iter("gate:*"):
            _redis.redis.delete(key)

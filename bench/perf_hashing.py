"""Section hashing: mailbox creation over HTTP against raw hashing on 1 and 2 threads."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import dataset
import httpx
from argon2.low_level import Type, hash_secret_raw
from figures import Figure
from perf import Bench, ratio
from sqlalchemy import text
from sqlalchemy.engine import create_engine

from mailctl.domain import passwords

CLIENTS = 8
PASSWORD = "bench-mailbox-password"  # noqa: S105 - the mailboxes of a throwaway server


def argon2_once() -> None:
    """One Argon2id hash with mailctl's parameters (argon2-cffi releases the GIL)."""
    hash_secret_raw(
        PASSWORD.encode(),
        os.urandom(passwords.ARGON2_SALT_BYTES),
        time_cost=passwords.ARGON2_TIME_COST,
        memory_cost=passwords.ARGON2_MEMORY_KIB,
        parallelism=passwords.ARGON2_PARALLELISM,
        hash_len=passwords.ARGON2_HASH_BYTES,
        type=Type.ID,
    )


_libcrypt = ctypes.CDLL("libcrypt.so.1")
_libcrypt.crypt_r.restype = ctypes.c_char_p
_libcrypt.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
# libxcrypt's struct crypt_data is 32 KiB; a zeroed buffer twice that size is always enough.
_CRYPT_DATA_BYTES = 64 * 1024
_local = threading.local()


def sha512_crypt_once() -> None:
    """One SHA512-CRYPT hash at mailctl's rounds, by glibc's crypt_r (outside the GIL)."""
    if not hasattr(_local, "data"):
        _local.data = ctypes.create_string_buffer(_CRYPT_DATA_BYTES)
    salt = os.urandom(12).hex()[: passwords.SHA_CRYPT_SALT_CHARS]
    setting = f"$6$rounds={passwords.SHA512_CRYPT_ROUNDS}${salt}".encode()
    if not _libcrypt.crypt_r(PASSWORD.encode(), setting, _local.data):
        raise RuntimeError("crypt_r refused the setting")


def raw_rate(hash_once: Callable[[], None], threads: int, per_thread: int) -> float:
    """Hashes per second on ``threads`` threads, each hashing ``per_thread`` times."""

    def work(_: int) -> None:
        for _ in range(per_thread):
            hash_once()

    hash_once()  # warm up (libraries loaded, memory mapped)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return threads * per_thread / (time.perf_counter() - started)


def _domain_id(server: Bench) -> int:
    """The id of the first domain, created through the API if the database has none."""
    with server.client() as client:
        domains = client.get("/domains").json()["domains"]
        if not domains:
            client.post("/domains", data={"domain": dataset.domain_name(0)}).raise_for_status()
            domains = client.get("/domains").json()["domains"]
    return int(domains[0]["id"])


class Creator:
    """Creates mailboxes through ``POST /user/:domain_id``, one httpx client per thread."""

    def __init__(self, server: Bench, domain_id: int, prefix: str) -> None:
        self.server = server
        self.domain_id = domain_id
        self.prefix = prefix
        self._count = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = self.server.client()
            with self._lock:
                self._clients.append(self._local.client)
        client: httpx.Client = self._local.client
        return client

    def create(self, _: object = None) -> None:
        with self._lock:
            self._count += 1
            n = self._count
        answer = self._client().post(
            f"/user/{self.domain_id}",
            data={"email": f"{self.prefix}{n}@{dataset.domain_name(0)}", "password": PASSWORD},
        )
        if answer.status_code != 200:
            raise RuntimeError(f"POST /user answered {answer.status_code}: {answer.text[:200]}")

    def rate(self, count: int, clients: int) -> float:
        """Creates per second for ``count`` mailboxes made by ``clients`` at once."""
        started = time.perf_counter()
        if clients == 1:
            for _ in range(count):
                self.create()
        else:
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(self.create, range(count)))
        return count / (time.perf_counter() - started)

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _stored_scheme(server: Bench) -> str:
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT password FROM virtual_users LIMIT 1")).scalar()
    finally:
        engine.dispose()
    return passwords.scheme_of(str(stored)) or "?"


def _scheme_figures(
    section: str,
    scheme: str,
    server: Bench,
    hash_once: Callable[[], None],
    raw_per_thread: int,
    creates: int,
) -> list[Figure]:
    # Raw hashing right before and right after the creates it is compared with, taking
    # the better: other work on a shared machine then lowers the ratio, never raises it.
    creator = Creator(server, _domain_id(server), f"{scheme.lower()}-")
    try:
        creator.create()  # warm up: the first create opens connections and folders
        one = raw_rate(hash_once, 1, raw_per_thread)
        sequential = creator.rate(creates, 1)
        one = max(one, raw_rate(hash_once, 1, raw_per_thread))
        two = raw_rate(hash_once, 2, raw_per_thread)
        parallel = creator.rate(creates, CLIENTS)
        two = max(two, raw_rate(hash_once, 2, raw_per_thread))
    finally:
        creator.close()
    stored = _stored_scheme(server)
    note = f"stored as {stored}" if stored == scheme else f"stored as {stored}, not {scheme}!"
    return [
        Figure(section, f"raw {scheme}, 1 thread", one, "hash/s"),
        Figure(
            section,
            f"raw {scheme}, 2 threads",
            two,
            "hash/s",
            f"raw {scheme}, 1 thread",
            one,
            two / one,
        ),
        Figure(
            section,
            f"{creates} creates ({scheme}), sequential",
            sequential,
            "create/s",
            "raw, 1 thread",
            one,
            sequential / one,
            note=note,
        ),
        Figure(
            section,
            f"{creates} creates ({scheme}), {CLIENTS} clients",
            parallel,
            "create/s",
            "raw, 2 threads",
            two,
            parallel / two,
            ">= 0.9x raw on 2 threads",
            parallel / two >= 0.9 and stored == scheme,
            note,
        ),
    ]


def run(ctx: Bench) -> list[Figure]:
    """Target 4 of issue #10, for Argon2id and for SHA512-CRYPT."""
    section = "hashing"
    built = dataset.build(ctx.database_url, 1_001, 0)
    print(f"  hashing: {built.domains:,} domains inserted in {built.seconds:.1f} s", flush=True)
    quick = ctx.quick
    figures = _scheme_figures(
        section, "ARGON2ID", ctx, argon2_once, 3 if quick else 20, 8 if quick else 100
    )

    # GET /domains for one panel user, alone and while 8 clients create mailboxes.
    idle = ctx.wrk("/domains", 1, repeats=1)
    creator = Creator(ctx, _domain_id(ctx), "during-")
    stop = threading.Event()

    def keep_creating() -> None:
        while not stop.is_set():
            creator.create()

    threads = [threading.Thread(target=keep_creating) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # every client has a create in flight
        loaded = ctx.wrk("/domains", 1, repeats=1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        creator.close()
    figures.append(
        Figure(
            section,
            f"GET /domains p99, 1 conn., while {CLIENTS} clients create (Argon2id)",
            loaded.p99_ms,
            "ms",
            "same without creates",
            idle.p99_ms,
            ratio(loaded.p99_ms, idle.p99_ms),
            "< 50 ms",
            loaded.p99_ms < 50 and loaded.clean,
            f"p50 {loaded.p50_ms:.1f} ms ({idle.p50_ms:.1f} ms without), {loaded.rps:.0f} req/s",
        )
    )

    with ctx.fresh_server({"MAILCTL_PASSWORD_SCHEME": "SHA512-CRYPT"}) as sha:
        figures += _scheme_figures(
            section,
            "SHA512-CRYPT",
            sha,
            sha512_crypt_once,
            8 if quick else 60,
            16 if quick else 300,
        )
    return figures

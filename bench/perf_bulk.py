"""Section bulk: a batch create through the API against one create per request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dataset
import httpx
import perf_hashing
from figures import Figure
from perf import Bench

BATCH = 10_000
PASSWORD = perf_hashing.PASSWORD


def _users(prefix: str, count: int, **secret: str) -> list[dict[str, str]]:
    domain = dataset.domain_name(0)
    return [{"email": f"{prefix}{n}@{domain}", **secret} for n in range(count)]


def _batch(client: httpx.Client, domain_id: int, users: list[dict[str, str]]) -> httpx.Response:
    return client.post(f"/user/{domain_id}/batch", json={"users": users}, timeout=600)


def run(ctx: Bench) -> list[Figure]:
    """Target 5 of issue #10 (the API half: a list of mailboxes in one request)."""
    section = "bulk"
    hashed = dataset.prehashed()
    singles = 200 if ctx.quick else 1_000
    with ctx.client() as client:
        client.post("/domains", data={"domain": dataset.domain_name(0)}).raise_for_status()
        domain_id = int(client.get("/domains").json()["domains"][0]["id"])

        # One request per mailbox, the way a script does it without a batch call.
        started = time.perf_counter()
        for user in _users("single-", singles, password_hash=hashed):
            client.post(f"/user/{domain_id}", data=user).raise_for_status()
        single_rate = singles / (time.perf_counter() - started)

        local = threading.local()
        opened: list[httpx.Client] = []

        def create(user: dict[str, str]) -> None:
            if not hasattr(local, "client"):
                local.client = ctx.client()
                opened.append(local.client)
            local.client.post(f"/user/{domain_id}", data=user).raise_for_status()

        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, _users("eight-", singles, password_hash=hashed)))
        finally:
            for own in opened:
                own.close()
        eight_rate = singles / (time.perf_counter() - started)
        figures = [
            Figure(
                section,
                f"{singles:,} creates, pre-hashed, one per request, sequential",
                single_rate,
                "create/s",
            ),
            Figure(
                section,
                f"{singles:,} creates, pre-hashed, one per request, 8 clients",
                eight_rate,
                "create/s",
                "sequential",
                single_rate,
                eight_rate / single_rate,
            ),
        ]

        started = time.perf_counter()
        answer = _batch(client, domain_id, _users("batch-", BATCH, password_hash=hashed))
        seconds = time.perf_counter() - started
        if answer.status_code in (404, 405):
            return [
                *figures,
                Figure(
                    section,
                    f"batch create of {BATCH:,} pre-hashed mailboxes",
                    0,
                    "",
                    target="< 5 s",
                    note="not available on this build (POST /user/:domain_id/batch "
                    f"answered {answer.status_code})",
                ),
            ]
        created = len(answer.json().get("users", [])) if answer.status_code == 200 else 0
        listed = len(client.get(f"/users/{domain_id}").json()["users"])
        whole = answer.status_code == 200 and created == BATCH and listed == 2 * singles + BATCH
        note = "" if whole else f"answered {answer.status_code}: {answer.text[:200]}"
        batch_rate = BATCH / seconds
        figures.append(
            Figure(
                section,
                f"batch create of {BATCH:,} pre-hashed mailboxes",
                seconds,
                "s",
                "one per request, sequential",
                BATCH / single_rate,
                batch_rate / single_rate,
                "< 5 s",
                whole and seconds < 5,
                note or f"{batch_rate:,.0f} create/s; ratio: speed-up over one per request",
            )
        )

        # Plain passwords: the server hashes the batch, in parallel if it can.
        plain = 8 if ctx.quick else 40
        raw = perf_hashing.raw_rate(perf_hashing.argon2_once, 2, max(2, plain // 4))
        started = time.perf_counter()
        answer = _batch(client, domain_id, _users("plain-", plain, password=PASSWORD))
        rate = plain / (time.perf_counter() - started)
        figures.append(
            Figure(
                section,
                f"batch create of {plain} mailboxes with passwords (Argon2id)",
                rate,
                "create/s",
                "raw Argon2id, 2 threads",
                raw,
                rate / raw,
                ">= 0.9x raw on 2 threads",
                answer.status_code == 200 and rate / raw >= 0.9,
                "" if answer.status_code == 200 else f"answered {answer.status_code}",
            )
        )
    return figures

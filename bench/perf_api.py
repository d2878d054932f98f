"""Section api: listing, small authenticated calls, /ping and logins, with wrk."""

from __future__ import annotations

import statistics
import time
from typing import Any

import dataset
from figures import Figure
from perf import Bench, RssPeak, ratio
from sqlalchemy.engine import make_url
from wrk import WrkResult

DOMAINS = 1_001
MAILBOXES = 10_001
SMALL = 1  # the index of the domain with exactly 10 mailboxes


def list_query(database_url: str) -> str:
    """The SQL text mailctl runs for GET /domains on this backend (storage.reads)."""
    from sqlalchemy import create_engine

    from mailctl.storage.reads import domains_sql

    engine = create_engine(database_url)
    try:
        return domains_sql(engine.dialect)
    finally:
        engine.dispose()


def prepare(ctx: Bench) -> None:
    """1,001 domains and 10,001 mailboxes, one domain with exactly 10."""
    built = dataset.build(ctx.database_url, DOMAINS, MAILBOXES, sized={SMALL: 10})
    ctx.state["built"] = built
    print(
        f"  api: {DOMAINS:,} domains and {MAILBOXES:,} mailboxes inserted in {built.seconds:.1f} s",
        flush=True,
    )


def connect(database_url: str) -> Any:
    """A DB-API connection of the backend's own driver, without SQLAlchemy."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        return sqlite3.connect(url.database or "")
    if url.get_backend_name() == "postgresql":
        import psycopg

        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, dbname=url.database
        )
    import pymysql

    return pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, database=url.database
    )


def driver_query_ms(database_url: str, seconds: float, rows: int = DOMAINS) -> float:
    """Median time of the GET /domains query through the driver, all rows fetched."""
    query = list_query(database_url)
    conn = connect(database_url)
    try:
        timings: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(timings) < 20:
            started = time.perf_counter()
            cursor = conn.cursor()
            cursor.execute(query)
            fetched = cursor.fetchall()
            cursor.close()
            timings.append(time.perf_counter() - started)
            # End the read transaction, as a request's session does.
            conn.rollback()
        assert len(fetched) == rows
        return statistics.median(timings) * 1000
    finally:
        conn.close()


def _detail(result: WrkResult) -> str:
    text = f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, {result.requests:,} requests"
    return f"{text}; {result.problems()}" if not result.clean else text


def run(ctx: Bench) -> list[Figure]:
    """The figures of targets 1 and 2 of issue #10."""
    section = "api"
    with ctx.client() as client:
        small_id = next(
            d["id"]
            for d in client.get("/domains").json()["domains"]
            if d["name"] == dataset.domain_name(SMALL)
        )
        assert len(client.get(f"/users/{small_id}").json()["users"]) == 10
    figures = [
        Figure(
            section,
            f"data set: {DOMAINS:,} domains, {MAILBOXES:,} mailboxes (SQL inserts)",
            ctx.state["built"].seconds,
            "s",
        )
    ]

    driver = driver_query_ms(ctx.database_url, 1 if ctx.quick else 3)
    driver_qps = 1000 / driver
    figures.append(Figure(section, "GET /domains query through the driver", driver, "ms"))

    one = ctx.wrk("/domains", 1)
    added = one.p50_ms - driver
    figures += [
        Figure(section, "GET /domains, 1 conn.", one.rps, "req/s", note=_detail(one)),
        Figure(
            section,
            "GET /domains, 1 conn.: p50 over the driver",
            added,
            "ms",
            "driver query",
            driver,
            one.p50_ms / driver,
            "<= 1 ms added",
            added <= 1 and one.clean,
        ),
    ]
    many = ctx.wrk("/domains", 32)
    figures += [
        Figure(
            section,
            "GET /domains, 32 conn.",
            many.rps,
            "req/s",
            "driver queries/s, 1 thread",
            driver_qps,
            many.rps / driver_qps,
            ">= 1,000 req/s",
            many.rps >= 1000 and many.clean,
            _detail(many),
        ),
        Figure(
            section,
            "GET /domains, 32 conn., p99",
            many.p99_ms,
            "ms",
            "driver query",
            driver,
            many.p99_ms / driver,
            "< 50 ms",
            many.p99_ms < 50 and many.clean,
        ),
    ]

    small: dict[int, WrkResult] = {}
    for connections in (1, 8, 32, 64):
        if connections == 32:
            # Right before the call it is compared with, so that both see the same load.
            ping = ctx.wrk("/ping", 32, auth=False)
            figures.append(
                Figure(
                    section,
                    "GET /ping, 32 conn.",
                    ping.rps,
                    "req/s",
                    target=">= 10,000 req/s",
                    met=ping.rps >= 10_000 and ping.clean,
                    note=_detail(ping),
                )
            )
        small[connections] = result = ctx.wrk(f"/users/{small_id}", connections)
        best_before = max((small[c].rps for c in small if c < connections), default=None)
        if connections == 32:
            target, met = (
                ">= 3,000 req/s, p99 < 30 ms",
                (result.rps >= 3000 and result.p99_ms < 30 and result.clean),
            )
        elif best_before is None:
            target, met = "", None
        else:
            # "Must not fall": within 5% of the best at fewer connections (noise).
            target, met = "no fall (>= 0.95x fewer conn.)", result.rps >= 0.95 * best_before
        figures.append(
            Figure(
                section,
                f"GET /users/:id (10 mailboxes), {connections} conn.",
                result.rps,
                "req/s",
                "same at 1 conn.",
                small[1].rps,
                ratio(result.rps, small[1].rps),
                target,
                met,
                _detail(result),
            )
        )
    cost = ratio(ping.rps, small[32].rps)
    figures.append(
        Figure(
            section,
            "authenticated small call / GET /ping (time per request, 32 conn.)",
            cost or 0.0,
            "x",
            "GET /ping req/s",
            ping.rps,
            cost,
            "<= 1.3x",
            cost is not None and cost <= 1.3 and ping.clean and small[32].clean,
        )
    )

    assert ctx.server_pid is not None
    body = f"username={ctx.admin_username}&password={ctx.admin_password}"
    with RssPeak(ctx.server_pid) as peak:
        login = ctx.wrk(
            "/auth", 32, auth=False, body=body, seconds=4 if ctx.quick else None, repeats=1
        )
    figures += [
        Figure(section, "POST /auth, 32 conn.", login.rps, "req/s", note=_detail(login)),
        Figure(
            section,
            "POST /auth, 32 conn.: server peak RSS",
            peak.peak_mib,
            "MiB",
            note="resident memory of mailctl serve and its children, sampled every 50 ms",
        ),
    ]
    return figures

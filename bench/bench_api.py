"""Benchmark of the HTTP API: listing many domains, and mailbox creation under load.

Run: .venv/bin/python bench/bench_api.py [--domains N] [--users N] [--database-url URL]
Prints figures; asserts nothing. SQLite in a temporary folder unless a URL is given.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from mailctl.api.app import create_app
from mailctl.config import Settings
from mailctl.services import auth, domains
from mailctl.services.context import Actor, Context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=args.database_url)
        ctx = Context.from_settings(settings)
        auth.initialize(ctx, "admin", "bench-password")
        actor = Actor("bench")
        started = time.perf_counter()
        for n in range(args.domains):
            domains.create_domain(ctx, actor, f"d{n}.example")
        print(
            f"created {args.domains} domains through the service in "
            f"{time.perf_counter() - started:.1f} s"
        )

        server = uvicorn.Server(
            uvicorn.Config(create_app(ctx=ctx), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            token = client.post("/auth", data={"username": "admin", "password": "bench-password"})
            headers = {"Auth-token": token.json()["token"]}
            timings = []
            for _ in range(20):
                t0 = time.perf_counter()
                response = client.get("/domains", headers=headers)
                timings.append(time.perf_counter() - t0)
                assert len(response.json()["domains"]) == args.domains
            print(
                f"GET /domains with {args.domains} domains: median "
                f"{statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms"
            )

            domain_id = client.get("/domains", headers=headers).json()["domains"][0]["id"]

            def create(n: int) -> float:
                t0 = time.perf_counter()
                r = client.post(
                    f"/user/{domain_id}",
                    headers=headers,
                    data={"email": f"u{n}@d0.example", "password": "bench-pass-1"},
                )
                assert r.status_code == 200, r.text
                return time.perf_counter() - t0

            pings: list[float] = []
            stop = threading.Event()

            def ping() -> None:
                with httpx.Client(base_url=base, timeout=30) as pinger:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        pinger.get("/ping")
                        pings.append(time.perf_counter() - t0)
                        time.sleep(0.01)

            pinger = threading.Thread(target=ping)
            pinger.start()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                latencies = list(pool.map(create, range(args.users)))
            total = time.perf_counter() - t0
            stop.set()
            pinger.join()
            print(
                f"created {args.users} mailboxes (Argon2id) 8 at a time in {total:.1f} s: "
                f"{args.users / total:.1f}/s, median latency "
                f"{statistics.median(latencies) * 1000:.0f} ms"
            )
            print(
                f"/ping while hashing: median {statistics.median(pings) * 1000:.1f} ms, "
                f"max {max(pings) * 1000:.1f} ms over {len(pings)} pings"
            )
        server.should_exit = True
        thread.join(timeout=10)
        ctx.close()


if __name__ == "__main__":
    main()

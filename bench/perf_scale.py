"""Section scale: 10,000 domains and a million mailboxes, listed whole and by pages."""

from __future__ import annotations

from urllib.parse import urlencode

import dataset
import perf_api
from figures import Figure
from perf import Bench, ratio

DOMAINS = 10_000
PAGE = 50
BIG = 0  # the index of the domain that holds a tenth of the mailboxes


def _mailboxes(ctx: Bench) -> int:
    return 100_000 if ctx.quick else 1_000_000


def prepare(ctx: Bench) -> None:
    """The data set, inserted by SQL before the server starts."""
    mailboxes = _mailboxes(ctx)
    built = dataset.build(ctx.database_url, DOMAINS, mailboxes, sized={BIG: mailboxes // 10})
    ctx.state["built"] = built
    print(
        f"  scale: {DOMAINS:,} domains and {mailboxes:,} mailboxes inserted in "
        f"{built.seconds:.1f} s",
        flush=True,
    )


def run(ctx: Bench) -> list[Figure]:
    """Target 3 of issue #10."""
    section = "scale"
    built: dataset.Built = ctx.state["built"]
    big_id = built.domain_ids[dataset.domain_name(BIG)]
    figures = [
        Figure(
            section,
            f"data set: {DOMAINS:,} domains, {built.mailboxes:,} mailboxes (SQL inserts)",
            built.seconds,
            "s",
            note=f"{built.rows_per_second:,.0f} rows/s",
        )
    ]

    driver = perf_api.driver_query_ms(ctx.database_url, 1 if ctx.quick else 3, DOMAINS)
    whole = ctx.wrk("/domains", 1)
    figures.append(
        Figure(
            section,
            f"GET /domains without paging, {DOMAINS:,} domains, 1 conn., p50",
            whole.p50_ms,
            "ms",
            "driver query",
            driver,
            whole.p50_ms / driver,
            "< 100 ms",
            whole.p50_ms < 100 and whole.clean,
            f"{whole.rps:.1f} req/s, p99 {whole.p99_ms:.0f} ms",
        )
    )

    # A page deep in the list, so that an offset that scans costs what it costs.
    domains_page = "/domains?" + urlencode(
        {"limit": PAGE, "offset": DOMAINS // 2, "search": "bench"}
    )
    users_page = f"/users/{big_id}?" + urlencode({"limit": PAGE, "offset": _mailboxes(ctx) // 20})
    ping = ctx.wrk("/ping", 1, auth=False)
    with ctx.client() as client:
        sizes = {
            domains_page: len(client.get(domains_page).json().get("domains", [])),
            users_page: len(client.get(users_page).json().get("users", [])),
        }
    for path, label in (
        (domains_page, "GET /domains page"),
        (users_page, f"GET /users/:id page ({_mailboxes(ctx) // 10:,} mailboxes)"),
    ):
        name = f"{label}, {PAGE} items, 1 conn., p50"
        if sizes[path] != PAGE:
            figures.append(
                Figure(
                    section,
                    name,
                    0,
                    "",
                    target="< 5 ms",
                    note=f"paging not available on this build ({path} gave {sizes[path]:,} items)",
                )
            )
            continue
        page = ctx.wrk(path, 1)
        figures.append(
            Figure(
                section,
                name,
                page.p50_ms,
                "ms",
                "GET /ping p50, 1 conn.",
                ping.p50_ms,
                ratio(page.p50_ms, ping.p50_ms),
                "< 5 ms",
                page.p50_ms < 5 and page.clean,
                f"{page.rps:,.0f} req/s, p99 {page.p99_ms:.1f} ms",
            )
        )
    return figures

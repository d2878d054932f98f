"""The benchmark reads wrk's --latency output right, and builds the wrk runs it means."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import perf
import wrk
from figures import Figure

# Recorded from wrk 4.1.0 (Debian) against small local servers.
FAST = """\
Running 2s test @ http://127.0.0.1:18765/ok
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.45ms   13.97ms 213.30ms   98.63%
    Req/Sec   747.58    323.82     1.86k    80.00%
  Latency Distribution
     50%    3.18ms
     75%    5.85ms
     90%    8.46ms
     99%   46.25ms
  2980 requests in 2.00s, 334.78KB read
Requests/sec:   1486.37
Transfer/sec:    166.98KB
"""
SLOW = """\
Running 3s test @ http://127.0.0.1:18765/slow
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s     3.40ms   1.21s    62.50%
    Req/Sec     3.00      0.00     3.00    100.00%
  Latency Distribution
     50%    1.21s~
     75%    1.21s~
     90%    1.21s~
     99%    1.21s~
  8 requests in 3.00s, 0.90KB read
Requests/sec:      2.66
Transfer/sec:     306.25B
""".replace("~", " ")  # wrk pads a figure in seconds with one space, kept here as "~"
MISSING = """\
Running 2s test @ http://127.0.0.1:18765/missing
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.66ms    5.58ms  54.28ms   94.46%
    Req/Sec     1.51k   442.87     2.48k    70.00%
  Latency Distribution
     50%  810.00us
     75%    2.62ms
     90%    5.41ms
     99%   31.42ms
  3003 requests in 2.00s, 357.89KB read
  Non-2xx or 3xx responses: 3003
Requests/sec:   1499.95
Transfer/sec:    178.76KB
"""
TIMED_OUT = """\
Running 3s test @ http://127.0.0.1:18765/slow
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     1.00      0.00     1.00    100.00%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  4 requests in 3.00s, 460.00B read
  Socket errors: connect 0, read 0, write 0, timeout 4
Requests/sec:      1.33
Transfer/sec:     153.09B
"""


def test_throughput_and_percentiles_in_milliseconds() -> None:
    """Requests per second, the request count and p50..p99 come out as printed, in ms."""
    result = wrk.parse(FAST)
    assert (result.rps, result.requests, result.seconds) == (1486.37, 2980, 2.0)
    assert (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms) == (
        3.18,
        5.85,
        8.46,
        46.25,
    )
    assert result.clean and result.problems() == ""


def test_seconds_and_microseconds_are_converted() -> None:
    """A latency printed in s or us (with wrk's trailing space) is read in ms."""
    assert wrk.parse(SLOW).p50_ms == pytest.approx(1210.0)
    assert wrk.parse(MISSING).p50_ms == pytest.approx(0.81)


def test_non_2xx_answers_make_a_run_unclean() -> None:
    """Error answers are counted, so a fast 404 never passes for a fast listing."""
    result = wrk.parse(MISSING)
    assert result.non_2xx == 3003
    assert not result.clean
    assert result.problems() == "3003 non-2xx answers"


def test_timeouts_make_a_run_unclean() -> None:
    """Requests that timed out (wrk then prints zero latencies) are reported as such."""
    result = wrk.parse(TIMED_OUT)
    assert (result.timeouts, result.socket_errors) == (4, 0)
    assert not result.clean
    assert result.problems() == "4 timeouts"


def test_output_that_is_not_wrk_latency_is_refused() -> None:
    """Output without the latency distribution (wrk run without --latency) is an error."""
    without = "\n".join(line for line in FAST.splitlines() if "%    " not in line)
    with pytest.raises(ValueError, match="not the output of wrk --latency"):
        wrk.parse(without)


def test_command_line() -> None:
    """Threads never outnumber connections; headers and the script are passed on."""
    argv = wrk.command("http://127.0.0.1:1/ping", 1, 3, {"Auth-token": "t"}, Path("p.lua"))
    assert argv[:5] == ["wrk", "--latency", "-t1", "-c1", "-d3s"]
    assert argv[-5:] == ["-H", "Auth-token: t", "-s", "p.lua", "http://127.0.0.1:1/ping"]
    assert wrk.command("http://x/", 32, 10)[2:4] == ["-t2", "-c32"]


def test_post_script_quotes_the_body() -> None:
    """The Lua script sends the form body as given, quotes and backslashes escaped."""
    script = wrk.post_script('username=admin&password=a"b\\c')
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "username=admin&password=a\\"b\\\\c"' in script
    assert 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"' in script


def test_table_shows_the_ratio_beside_the_figure() -> None:
    """Each row shows value, raw limit, ratio, target and met; notes go below."""
    text = perf.table(
        [
            Figure("api", "GET /domains, 32 conn.", 1250.0, "req/s", "driver", 500.0, 2.5,
                   ">= 1,000 req/s", True, "p99 20 ms"),
            Figure("bulk", "batch", 0, "", target="< 5 s", note="not available on this build"),
        ]
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == [
        "section", "figure", "value", "raw", "limit", "limit", "ratio", "target", "met"
    ]  # fmt: skip
    assert "1,250 req/s" in lines[2] and "2.50x" in lines[2] and lines[2].rstrip().endswith("yes")
    assert lines[3].split()[-1] == "—"
    assert "bulk / batch: not available on this build" in text


def test_a_run_without_answers_is_unclean() -> None:
    """A run in which no request finished says so, rather than passing for 0 ms."""
    none = FAST.replace("2980 requests in", "0 requests in").replace("1486.37", "0.00")
    result = wrk.parse(none)
    assert not result.clean
    assert result.problems() == "no request answered within the run"


def test_ratio_of_a_zero_limit_is_none() -> None:
    """A ratio to a limit of zero (a run that answered nothing) is left out, not a crash."""
    assert perf.ratio(3.0, 2.0) == 1.5
    assert perf.ratio(3.0, 0.0) is None

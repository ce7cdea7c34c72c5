"""``python -m bench``: measure agentpty against its budgets and print a Markdown table.

One run, one machine, one server process (``agentpty serve`` as a child, so
its CPU and memory are its own). The table goes to stdout and to
``bench/RESULTS.md``; progress goes to stderr. The exit code is 1 when a
budget fails (or a measurement breaks), 2 when the server cannot start.
Budgets are checked here and never in the test suite: they depend on the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import (
    adoption,
    attach,
    echo,
    first_screen,
    idle_cpu,
    idle_rss,
    stalled,
    state_latency,
    throughput,
)
from bench.context import Bench, Options
from bench.host import stop_host
from bench.report import Row, machine_line, render_table
from bench.server import ServerProcess, Shutdown

Measure = Callable[[Bench], Awaitable[list[Row]]]

#: In table order: (a) to (d) as DESIGN.md's budgets list them, then the stalled viewer and
#: the first screen (the hot-path budgets), then the CLI's attach.
MEASUREMENTS: dict[str, Measure] = {
    "throughput": throughput.measure,
    "echo": echo.measure,
    "idle-cpu": idle_cpu.measure,
    "idle-rss": idle_rss.measure,
    "stalled": stalled.measure,
    "first-screen": first_screen.measure,
    "attach": attach.measure,
    "state": state_latency.measure,
}
#: The idle measurements go first: the memory baseline must precede every
#: session, and no flood may have grown the heap before memory is read.
#: Echo and throughput then run with the idle fleet still attached.
RUN_ORDER = (
    "idle-cpu",
    "idle-rss",
    "echo",
    "first-screen",
    "attach",
    "throughput",
    "stalled",
    "state",
)
SHUTDOWN_TIMEOUT = 15.0
DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure agentpty's hot path against its budgets."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and a 5 s idle window (smoke run)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[*MEASUREMENTS, "adoption"],
        metavar="NAME",
        help=f"run only this measurement (repeatable): {', '.join([*MEASUREMENTS, 'adoption'])}",
    )
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where to write the table"
    )
    parser.add_argument(
        "--rounds", type=int, metavar="N", help="throughput passes per variant (default 7)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server, e.g. AGENTPTY_EVENT_LOOP=asyncio (repeatable)",
    )
    parser.add_argument(
        "--server-src",
        type=Path,
        metavar="DIR",
        help="import the server from this src folder (e.g. an export of an older commit)",
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _shutdown_row(shutdown: Shutdown) -> Row:
    if shutdown.exit_code is None:
        ended = f"did not exit within {SHUTDOWN_TIMEOUT:g} s (killed)"
    elif shutdown.exit_code < 0:
        ended = f"exited on signal {signal.Signals(-shutdown.exit_code).name}"
    else:
        ended = f"exit code {shutdown.exit_code}"
    return Row(
        "server shutdown on SIGTERM (detaches: agents stay in the session host)",
        f"{ended} after {shutdown.seconds:.2f} s; "
        f"{shutdown.survivors} of {shutdown.children} child processes left running",
        f"exits within {SHUTDOWN_TIMEOUT:g} s, no child left",
        shutdown.clean,
    )


async def _adoption(workdir: Path, bench: Bench) -> tuple[list[Row], Shutdown]:
    """Stop the server (it detaches), start another on its data dir, measure the adoption."""
    pids: dict[str, int] = {}
    for project in bench.fleet.project_ids if bench.fleet is not None else []:
        info = (await bench.server.http.get(f"/api/output-projects/{project}/session")).json()
        pids[project] = info["pid"]
    if bench.fleet is not None:
        await bench.fleet.close()
        bench.fleet = None
    shutdown = await bench.server.stop(timeout=SHUTDOWN_TIMEOUT)
    _log(f"restarting the server to adopt {len(pids)} sessions")
    rows, second = await adoption.measure_restart(workdir, pids)
    await second.stop(timeout=SHUTDOWN_TIMEOUT)
    return rows, shutdown


async def _run(
    options: Options, selected: list[str], env: dict[str, str], source: Path | None
) -> list[Row]:
    results: dict[str, list[Row]] = {}
    shutdown: Shutdown | None = None
    with tempfile.TemporaryDirectory(prefix="agentpty-bench-") as tmp:
        _log("starting the server")
        server = await ServerProcess.start(Path(tmp), extra_env=env, source=source)
        bench: Bench | None = None
        try:
            await server.warm_up()
            bench = Bench(server, options, baseline_rss_mib=server.rss_mib())
            for name in RUN_ORDER:
                if name not in selected:
                    continue
                _log(f"running {name}")
                started = time.perf_counter()
                try:
                    results[name] = await MEASUREMENTS[name](bench)
                except Exception as exc:
                    _log(
                        f"{name} failed:\n{traceback.format_exc()}"
                        f"server log (end):\n{server.log_tail()}"
                    )
                    results[name] = [Row(name, f"error: {exc!r}", "completes", False)]
                _log(f"{name} done in {time.perf_counter() - started:.1f} s")
            if "adoption" in selected and bench.fleet is not None:
                _log("running adoption")
                try:
                    results["adoption"], shutdown = await _adoption(Path(tmp), bench)
                except Exception as exc:
                    _log(f"adoption failed:\n{traceback.format_exc()}")
                    results["adoption"] = [Row("adoption", f"error: {exc!r}", "completes", False)]
        finally:
            if bench is not None and bench.fleet is not None:
                await bench.fleet.close()
            if shutdown is None:
                shutdown = await server.stop(timeout=SHUTDOWN_TIMEOUT)
            await stop_host(server.data_dir)
    rows = [row for name in MEASUREMENTS if name in results for row in results[name]]
    rows += results.get("adoption", [])
    return [*rows, _shutdown_row(shutdown)]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    options = Options(quick=args.quick, rounds=args.rounds)
    selected = args.only or [*MEASUREMENTS, "adoption"]
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += f", only {', '.join(args.only)}"
    env = dict(item.partition("=")[::2] for item in args.server_env)
    if env:
        mode += f", server env {' '.join(args.server_env)}"
    if args.server_src:
        mode += f", server from {args.server_src}"
    if args.rounds:
        mode += f", {args.rounds} throughput rounds"
    header = machine_line(mode)
    try:
        source = args.server_src.resolve() if args.server_src else None
        rows = asyncio.run(_run(options, selected, env, source))
    except RuntimeError as exc:
        _log(str(exc))
        return 2
    text = f"{header}\n\n{render_table(rows)}\n"
    print(text)
    args.results.write_text(f"# agentpty benchmark results\n\n{text}")
    _log(f"table written to {args.results}")
    return 1 if any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

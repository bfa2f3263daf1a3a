"""`gatecheck serve`: the counter screen and local API under waitress (docs/counter.md).

Waitress is a production WSGI server in pure Python: no build step on the
device, threads for the long-lived event streams, and it listens only where
told (127.0.0.1 unless configured otherwise).

Under systemd (Type=notify, docs/deployment.md) the main thread runs
waitress's socket loop itself, one poll at a time, instead of
``server.run()``: between polls it pings the watchdog, so the ping proves
that the loop accepting connections and handing requests to the worker
threads is turning, and READY=1 goes out once the socket listens and the app
is built.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from appliance.cli_common import data_dir_option, fail

#: Worker threads: each open event stream holds one (at most 8, api.MAX_STREAMS),
#: the rest serve scans, pages and status.
THREADS = 16
#: Waitress buffers a request body before the app sees it; past this it refuses
#: with its own plain-text 413 and buffers nothing. Below it, the app answers
#: oversized bodies with a JSON 413 (appliance/web/__init__.py).
MAX_BODY = 16 * 1024 * 1024


@click.command()
@data_dir_option
@click.option("--host", default=None, help="Address to listen on (default: the config's host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: the config's port, 8470; 0 picks a free one and prints it).")
def serve(data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Run the counter screen and the local JSON API.

    Prints one line with the address it listens on, then serves until
    stopped (Ctrl-C or SIGTERM).
    """
    import waitress

    from appliance.config import ConfigError, is_loopback_host, load_config
    from appliance.systemd_notify import ServiceNotifier
    from appliance.web import create_app

    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        fail(str(exc))
    if host is not None and host != config.host:
        from dataclasses import replace

        config = replace(config, host=host)
    port = config.port if port is None else port
    try:
        app = create_app(config)
    except Exception as exc:  # a damaged data dir is one line, never a traceback
        fail(f"cannot start the counter app: {getattr(exc, 'message', exc)}")
    if not is_loopback_host(config.host):
        click.echo(f"gatecheck: warning: listening on {config.host}, reachable from other machines "
                   "without TLS", err=True)
    socket_map: dict = {}  # ours, so the main loop below can poll it
    try:
        server = waitress.create_server(app, map=socket_map, host=config.host, port=port, threads=THREADS,
                                        ident="gatecheck", clear_untrusted_proxy_headers=True,
                                        channel_timeout=60, max_request_body_size=MAX_BODY,
                                        # keep reading while a request runs, so an event
                                        # stream learns at once that its client has gone
                                        channel_request_lookahead=4)
    except OSError as exc:
        fail(f"cannot listen on {config.host}:{port}: {exc.strerror or exc}")
    state = app.extensions["gatecheck"]
    notifier = ServiceNotifier()

    def stop(*_: object) -> None:
        notifier.stopping()
        # End the event streams first: waitress waits up to 5 s for busy threads.
        state.stop_streams()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    addresses = _addresses(server)
    for address in addresses:
        click.echo(f"gatecheck: counter screen on {address} (data dir {config.data_dir})")
    sys.stdout.flush()
    notifier.ready(status=f"counter screen on {' '.join(addresses)}")
    try:
        run_loop(server, socket_map, notifier)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        state.stop_streams()
        server.task_dispatcher.shutdown()  # what server.run() does on its way out
        server.close()
        state.close()


def run_loop(server, socket_map: dict, notifier) -> None:
    """waitress's own loop (``server.run()``), one poll at a time, pinging the watchdog in between.

    A poll returns after at most ``notifier.loop_timeout`` seconds (waitress
    itself polls with a 1 s timeout), so a ping is never late while the loop
    turns; a loop stuck in a poll, or in a dispatcher's handler, stops the
    pings and systemd restarts the service.
    """
    from waitress import wasyncore

    while socket_map:
        wasyncore.loop(timeout=notifier.loop_timeout, map=socket_map,
                       use_poll=server.adj.asyncore_use_poll, count=1)
        notifier.watchdog()


def _addresses(server) -> list[str]:
    """The URLs the server really listens on (``--port 0`` picks the port)."""
    listens = getattr(server, "effective_listen", None)
    if listens is None:
        listens = [(server.effective_host, server.effective_port)]
    urls = []
    for host, port in listens:
        host = f"[{host}]" if ":" in str(host) else host
        urls.append(f"http://{host}:{port}/")
    return urls


if __name__ == "__main__":  # pragma: no cover - `gatecheck serve` is the usual way in
    serve()

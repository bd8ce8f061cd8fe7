"""`python -m fakehub --port 0 --repos DIR [--cdn-port 0]`: run the fake Hub and its CDN
(from the tests/ folder).

Prints `FAKEHUB READY http://127.0.0.1:PORT CDN http://127.0.0.1:CDNPORT` once both listen.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys

import uvicorn

from .app import DEFAULT_TOKENS, CdnApp, HubApp, State
from .store import RepoStore


class _Server(uvicorn.Server):
    """Two servers share one process: signals are handled once, for both, by main()."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fakehub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--repos", required=True, help="repos folder (see tests/fakehub/store.py)")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="accepted token (repeatable); default: hf_good=alice, hf_other=bob")
    parser.add_argument("--no-xet", action="store_true", help="never send Xet metadata")
    parser.add_argument("--no-gzip", action="store_true", help="never gzip regular files")
    parser.add_argument("--resolve-cache", action="store_true",
                        help="answer resolve of regular files with a relative 307 to /api/resolve-cache/...")
    parser.add_argument("--cdn-url-ttl", type=int, default=3600)
    parser.add_argument("--chunk-size", type=int, default=1024 * 1024)
    parser.add_argument("--secret", default=None, help="key signing the CDN urls (random by default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tokens = dict(DEFAULT_TOKENS)
    if args.token:
        tokens = {}
        for item in args.token:
            token, _, user = item.partition("=")
            tokens[token] = user or "alice"
    state = State(RepoStore(args.repos), {
        "tokens": tokens, "page_size": args.page_size, "xet": not args.no_xet, "gzip": not args.no_gzip,
        "resolve_cache": args.resolve_cache, "cdn_url_ttl": args.cdn_url_ttl, "chunk_size": args.chunk_size,
    }, secret=args.secret)
    hub_sock, cdn_sock = _bind(args.host, args.port), _bind(args.host, args.cdn_port)
    state.hub_url = f"http://{args.host}:{hub_sock.getsockname()[1]}"
    state.cdn_url = f"http://{args.host}:{cdn_sock.getsockname()[1]}"

    def config(app: object) -> uvicorn.Config:
        return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http="h11",
                              timeout_keep_alive=30, timeout_graceful_shutdown=1)

    servers = [_Server(config(HubApp(state))), _Server(config(CdnApp(state)))]

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(servers[0].serve(sockets=[hub_sock])),
                 asyncio.create_task(servers[1].serve(sockets=[cdn_sock]))]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.005)
        if all(s.started for s in servers):
            print(f"FAKEHUB READY {state.hub_url} CDN {state.cdn_url}", flush=True)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()

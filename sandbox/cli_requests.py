"""`sandbox requests NAME [SERVICE]`: what a running sandbox's stubs received (-f follows)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from sandbox.output import Printer


def requests(
    name: Annotated[str, typer.Argument(help="The sandbox.")],
    service: Annotated[str | None, typer.Argument(help="One stub (default: all).")] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print JSON (with -f, one entry per line).")
    ] = False,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing requests as they arrive.")
    ] = False,
    method: Annotated[str | None, typer.Option("--method", help="Only this method.")] = None,
    path: Annotated[str | None, typer.Option("--path", help="Only this exact path.")] = None,
) -> None:
    """List what a sandbox's stubs received, oldest first (-f follows; Ctrl-C ends it)."""
    from sandbox import output_requests as view
    from sandbox.runtime.requests_feed import requests_feed
    from sandbox.runtime.state import state_root

    out = Printer()
    feed = requests_feed(state_root(), name, service, method=method, path=path, follow=follow)
    try:
        if not follow:
            entries = list(feed)
            if json_:
                view.requests_json(out, entries)
            else:
                view.requests_table(out, entries)
            return
        if not json_:
            view.stream_header(out)
        for entry in feed:
            if json_:
                view.request_json_line(out, entry)
            else:
                view.stream_row(out, entry)
    except BrokenPipeError:
        # The reader left (`| head`): stop quietly, and keep Python's exit-time flush of
        # stdout from failing again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None

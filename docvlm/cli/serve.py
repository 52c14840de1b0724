"""The ``docvlm serve`` and ``docvlm view`` commands (registered in ``docvlm.cli``).

Only typer is imported here; FastAPI and uvicorn load when a command runs, so the rest
of the CLI works without the ``server`` extra.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from docvlm.cli.common import Formats
from docvlm.errors import DocVLMError, ExitCode
from docvlm.settings import Settings

__all__ = ["serve_command", "view_command"]

LOCALHOST = "127.0.0.1"


def _server() -> None:
    try:
        import docvlm.server.run  # noqa: F401
    except ImportError:
        sys.stderr.write(
            "error: docvlm serve and view need the server extra: pip install 'docvlm[server]'\n"
        )
        raise typer.Exit(ExitCode.CRASHED) from None


Host = Annotated[
    str,
    typer.Option("--host", help="Address to bind; 0.0.0.0 exposes it to the network."),
]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]


def serve_command(
    checkpoint: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at run time
        typer.Option("--checkpoint", "-c", help="Hub id or directory for every task."),
    ] = None,
    host: Host = LOCALHOST,
    port: Port = 8000,
    device: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--device", help="auto, cpu or cuda (default: DOCVLM_DEVICE or auto)."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Conversions run at once.")] = 2,
    queue: Annotated[
        int, typer.Option("--queue", min=0, help="Conversions that may wait; then 429.")
    ] = 8,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload (413 above).")
    ] = 64.0,
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="Converted documents kept for the viewer.")
    ] = 32,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout",
            min=0.001,
            help="Seconds one request may take, upload included; then 504 and its "
            "conversion is cancelled.",
        ),
    ] = 300.0,
) -> None:
    """Serve POST /v1/convert and the viewer; models stay loaded between requests."""
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("use auto, cpu or cuda", param_hint="--device")
    _server()
    from docvlm.server.run import run, service_app

    settings = Settings() if device is None else Settings(device=device)
    app = service_app(
        settings,
        checkpoint=checkpoint,
        workers=workers,
        queue_limit=queue,
        max_upload_bytes=int(max_upload_mb * (1 << 20)),
        keep=keep,
        request_timeout=request_timeout,
    )
    _warn_if_exposed(host)
    run(app, host=host, port=port)


def _warn_if_exposed(host: str) -> None:
    if host not in (LOCALHOST, "localhost", "::1"):
        sys.stderr.write(
            f"warning: listening on {host}: anyone who can reach it can use the service "
            "and read what it converted (there is no authentication)\n"
        )


def view_command(
    output: Annotated[
        Path,
        typer.Argument(
            help="What docvlm convert wrote: a JSONL of Documents, a Parquet file or "
            "folder of parts, or an output folder."
        ),
    ],
    root: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--root",
            help="Folder a Document's relative source path is looked up in first [default: "
            "none]. Then the folder that holds OUTPUT: for out.jsonl its folder, for out/ the "
            "folder containing out/ (where docvlm convert usually ran). Pages are drawn only "
            "from files under these folders; the working directory is not searched.",
        ),
    ] = None,
    host: Host = LOCALHOST,
    port: Port = 8000,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the viewer in a browser.")
    ] = False,
    export: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--export",
            metavar="DIR",
            help="Write each page as PNG with its boxes drawn (DIR/NNNN-NAME/page-NNNN.png) "
            "instead of serving the viewer.",
        ),
    ] = None,
    formats: Formats = None,
    edit: Annotated[
        bool,
        typer.Option(
            "--edit",
            help="Turn the editors on: corrections are saved into OUTPUT (docs/serve.md).",
        ),
    ] = False,
    token: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--token",
            envvar="DOCVLM_VIEW_TOKEN",
            show_envvar=True,
            help="Secret that saving a correction needs; required with --edit on any "
            "address but 127.0.0.1, localhost or ::1.",
        ),
    ] = None,
) -> None:
    """Open the viewer over a conversion output: pages with boxes beside what was read."""
    _check_editing(edit, host, token)
    _server()
    from docvlm.archive.output import Output, OutputError
    from docvlm.server.run import run, viewer_app

    if not output.exists():
        raise typer.BadParameter(f"{output} does not exist", param_hint="OUTPUT")
    if formats and export is None:
        raise typer.BadParameter("--formats goes with --export DIR", param_hint="--formats")
    if export is not None:
        _export(output, root, export, formats or [])
        return
    try:
        found = Output.existing(output)  # parsed here, once: what is there
        app = viewer_app(found, root=root, edit=edit, token=token if edit else None)
    except OutputError as error:
        raise typer.BadParameter(str(error), param_hint="OUTPUT") from None
    except DocVLMError as error:  # its corrections log does not read (names file and line)
        sys.stderr.write(f"error: {error}\n")
        raise typer.Exit(ExitCode.of(error)) from None
    _warn_if_exposed(host)
    run(app, host=host, port=port, open_browser=open_browser)


def _check_editing(edit: bool, host: str, token: str | None) -> None:
    """Editing beyond this machine needs a token: anyone who reaches the port could
    otherwise rewrite the output."""
    if edit and host not in (LOCALHOST, "localhost", "::1") and not token:
        raise typer.BadParameter(
            f"editing on {host} needs a token: give --token or set DOCVLM_VIEW_TOKEN",
            param_hint="--edit",
        )


def _export(output: Path, root: Path | None, folder: Path, formats: list[str]) -> None:
    from docvlm.archive.output import Output, OutputError
    from docvlm.formats.files import parse_formats
    from docvlm.server.export import export_pictures
    from docvlm.server.outputs import FileArchive

    try:
        chosen = parse_formats(formats) if formats else ()
    except (ValueError, DocVLMError) as error:
        raise typer.BadParameter(str(error), param_hint="--formats") from None
    try:
        archive = FileArchive(Output.existing(output), Settings(), root=root)
    except OutputError as error:
        raise typer.BadParameter(str(error), param_hint="OUTPUT") from None
    done = export_pictures(archive, folder, formats=chosen)
    for failure in done.failed:
        sys.stderr.write(f"error: {failure}\n")
    sys.stderr.write(f"wrote {len(done.written)} file(s) into {folder}\n")
    if done.failed:
        raise typer.Exit(ExitCode.FAILED)

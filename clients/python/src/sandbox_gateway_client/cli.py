"""`sgw`: the Sandbox Gateway from a terminal or a script (Typer + Rich, over the typed client).

Conventions: stdout carries results (a session id, a table, the code's own stdout, or one JSON
document with `--json`); stderr carries everything else (the code's stderr, tracebacks, spinners,
progress bars, notices, errors). What the sandboxed code prints is written byte for byte, never
through Rich, so markup-looking text and long lines reach the caller unchanged.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NoReturn, cast

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from sandbox_gateway_client import Execution, ExecutionRecord, Gateway, GatewayError, Session, Usage

EXIT_OK = 0
EXIT_CODE_RAISED = 1
EXIT_USAGE = 2  # Click's own code for a bad command line; also: no URL, unreadable local file
EXIT_API_ERROR = 3
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_OOM = 137  # as a process killed by SIGKILL, which is what the OOM killer does
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_PENDING = 75  # EX_TEMPFAIL: `sgw execution wait` gave up while it still runs; waiting again may help

EXIT_CODES_HELP = """\
[bold]Exit codes[/bold]
0 success · 1 the code raised (or its kernel died)
2 bad command line, no gateway URL, a local file that cannot be read or written
3 the gateway answered an error (`error: <code>: <message>` on stderr) or could not be reached
124 the code timed out · 137 it ran out of memory · 130 interrupted (Ctrl-C)
75 `sgw execution wait`: still queued or running when --timeout ran out

URL and key: --url / --api-key, or the environment variables SGW_URL / SGW_API_KEY.
"""

ADMIN_HELP = """\
[bold]Where[/bold]: --table (TABLE_NAME, default sandbox-gateway-sessions: the stack's SessionsTableName),
--endpoint-url (DYNAMODB_ENDPOINT_URL: the local stack's moto server; `make dev` prints both),
--region (AWS_REGION / AWS_DEFAULT_REGION). Credentials: the usual AWS chain.

[bold]Exit codes[/bold]: 0 success · 2 bad command line, or the service package is not installed
3 the table could not be read or written, or the key / tenant named does not exist
"""
PROGRESS_THRESHOLD_BYTES = 1024 * 1024  # transfers above this show a progress bar (on stderr)
NOTICE_WAITS_FROM_SECONDS = 2.0  # a retry that waits this long says why on stderr (a quota: 30 s)

LANGUAGE_BY_SUFFIX = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".sh": "bash",
    ".bash": "bash",
}

# Result formats that are files rather than text: base64 payloads, plus SVG (text, but an image).
BINARY_FORMATS = {"png": "png", "jpeg": "jpg", "gif": "gif", "pdf": "pdf"}
TEXT_FILE_FORMATS = {"svg": "svg"}
# Rich text formats saved only when a result has no plain `text` to print instead.
FALLBACK_FORMATS = {
    "markdown": "md",
    "html": "html",
    "latex": "tex",
    "json": "json",
    "javascript": "js",
}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

app = typer.Typer(
    name="sgw",
    help="Sandbox Gateway: stateful code-execution sessions from the command line.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals would include the API key
)
session_app = typer.Typer(
    help="Create, list, show, keep alive and close sessions.", no_args_is_help=True, epilog=EXIT_CODES_HELP
)
files_app = typer.Typer(
    help="Move files in and out of a session's sandbox.", no_args_is_help=True, epilog=EXIT_CODES_HELP
)
execution_app = typer.Typer(
    help="Follow executions (`sgw run --async` queues one): show one, wait for its result.",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
)
callbacks_app = typer.Typer(
    help="The secret that signs this tenant's completion callbacks.", no_args_is_help=True
)
admin_app = typer.Typer(
    help="Operators: API keys, quotas and every tenant's usage, straight in the DynamoDB table "
    "(AWS credentials, or the local stack's endpoint). Needs the service package: the project's venv.",
    no_args_is_help=True,
    epilog=ADMIN_HELP,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True, epilog=ADMIN_HELP)
quotas_app = typer.Typer(help="A tenant's quota overrides.", no_args_is_help=True, epilog=ADMIN_HELP)
app.add_typer(session_app, name="session")
app.add_typer(files_app, name="files")
app.add_typer(execution_app, name="execution")
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(keys_app, name="keys")
admin_app.add_typer(quotas_app, name="quotas")


@dataclasses.dataclass
class Options:
    url: str | None
    api_key: str | None
    json: bool

    _gateway: Gateway | None = dataclasses.field(default=None, repr=False)

    def gateway(self) -> Gateway:
        if not self.url:  # Typer has already looked at SGW_URL
            _fail("error: no gateway URL: pass --url or set SGW_URL (`make dev` prints it)", EXIT_USAGE)
        if self._gateway is None:
            if not self.url.lower().startswith(("http://", "https://")):
                _fail(f"error: the gateway URL must start with http:// or https://: {self.url}", EXIT_USAGE)
            try:
                self._gateway = Gateway(url=self.url, api_key=self.api_key, on_retry=_notice_retry)
            except (ValueError, httpx.InvalidURL) as exc:
                _fail(f"error: invalid gateway URL {self.url}: {exc}", EXIT_USAGE)
        return self._gateway

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()


def _notice_retry(reason: GatewayError, delay: float) -> None:
    # Short waits (a busy session) pass silently; a long one (the live-session quota) is explained.
    if delay >= NOTICE_WAITS_FROM_SECONDS:
        typer.echo(f"{reason.code}: {reason.message}; retrying in {delay:g} s", err=True)


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None, "the sgw callback sets the options"
    return options


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(version("sandbox-gateway-client"))
        except PackageNotFoundError:
            typer.echo("unknown")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", envvar="SGW_URL", help="Gateway base URL.", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="SGW_API_KEY", help="API key, if the gateway wants one.", show_default=False
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout, nothing decorative.")
    ] = False,
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    options = Options(url=url or None, api_key=api_key or None, json=json_output)
    ctx.obj = options
    ctx.call_on_close(options.close)


# --- output helpers -------------------------------------------------------------------------


def _print_table(table: Table) -> None:
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(table)
        return
    # A pipe gets whole lines without Rich's padding: a wide virtual terminal, trailing blanks cut.
    console = Console(highlight=False, width=512, no_color=True)
    with console.capture() as captured:
        console.print(table)
    _write_raw("stdout", "".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _print_json(value: Any) -> None:
    _write_raw("stdout", json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def _binary(stream: str) -> BinaryIO:
    text = sys.stdout if stream == "stdout" else sys.stderr
    text.flush()  # keep the order with what was echoed before
    return cast(BinaryIO, text.buffer)


def _write_raw(stream: str, text: str) -> None:
    """Write text byte for byte (UTF-8, whatever the locale), in order with earlier echoes."""
    binary = _binary(stream)
    binary.write(text.encode("utf-8", "surrogateescape"))
    binary.flush()


def _table(*headers: str, show_header: bool = True) -> Table:
    # Plain columns that start at the margin: easy to read, and to cut or grep.
    return Table(*headers, show_header=show_header, box=None, pad_edge=False, header_style="bold")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


@contextmanager
def _reporting(options: Options) -> Iterator[None]:
    """One place that turns gateway errors, unreachable gateways and Ctrl-C into exit codes."""
    try:
        yield
    except GatewayError as exc:
        if options.json:
            error = {
                "status": exc.status,
                "code": exc.code,
                "message": exc.message,
                "request_id": exc.request_id,
                "details": exc.details,
            }
            _print_json({"error": error})
        request = f" (request id {exc.request_id})" if exc.request_id else ""
        _fail(f"error: {exc.code}: {exc.message}{request}", EXIT_API_ERROR)
    except httpx.HTTPError as exc:  # the client wraps transport errors; this is a last guard
        if options.json:
            _print_json({"error": {"code": "connection_failed", "message": str(exc)}})
        _fail(f"error: connection_failed: {exc}", EXIT_API_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)


@contextmanager
def _spinner(message: str) -> Iterator[None]:
    # Rich draws nothing when stderr is not a terminal, so scripts see no spinner residue.
    with _stderr_console().status(message, spinner="dots"):
        yield


class _Transfer:
    """A progress callback `(done, total)` that shows a bar on stderr once the total is over 1 MiB."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if total <= PROGRESS_THRESHOLD_BYTES:
                return
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=_stderr_console(),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def _transfer(label: str) -> Iterator[Callable[[int, int], None]]:
    bar = _Transfer(label)
    try:
        yield bar
    finally:
        bar.close()


# --- environments ---------------------------------------------------------------------------


@app.command()
def environments(ctx: typer.Context) -> None:
    """List the environments sessions can be created from."""
    options = _options(ctx)
    with _reporting(options):
        found = options.gateway().environments()
    if options.json:
        _print_json(found)
        return
    table = _table("NAME", "PROVIDER", "DEFAULT LANGUAGE", "LANGUAGES", "INTERNET", "DESCRIPTION")
    for env in found:
        table.add_row(
            env.name,
            env.provider,
            env.default_language,
            ", ".join(env.languages),
            "yes" if env.allow_internet_access else "no",
            env.description or "",
        )
    _print_table(table)


# --- sessions -------------------------------------------------------------------------------


def _key_values(pairs: list[str] | None, what: str) -> dict[str, str] | None:
    if not pairs:
        return None
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        parsed[key] = value
    return parsed


def _start_session(
    gw: Gateway,
    environment: str,
    *,
    provider: str | None = None,
    timeout: int | None = None,
    metadata: dict[str, str] | None = None,
    envs: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Session:
    with _spinner(f"Starting a session ({environment})…"):
        return gw.create_session(
            environment,
            provider=provider,
            timeout_seconds=timeout,
            metadata=metadata,
            envs=envs,
            idempotency_key=idempotency_key,
        )


@session_app.command("create")
def session_create(
    ctx: typer.Context,
    *,
    environment: Annotated[str, typer.Option("--environment", "-e", help="See `sgw environments`.")] = (
        "e2b-python"
    ),
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Must match the environment's.", show_default=False)
    ] = None,
    timeout: Annotated[
        int | None,
        typer.Option(
            "--timeout", "-t", help="Session lifetime in seconds (server default if absent).", min=1
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE, repeatable.", show_default=False)
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", help="KEY=VALUE for the sandbox's environment, repeatable.", show_default=False
        ),
    ] = None,
) -> None:
    """Start a session and print its id (a spinner shows on stderr while it starts)."""
    options = _options(ctx)
    meta = _key_values(metadata, "--metadata")
    envs = _key_values(env, "--env")
    with _reporting(options):
        session = _start_session(
            options.gateway(), environment, provider=provider, timeout=timeout, metadata=meta, envs=envs
        )
    if options.json:
        _print_json(session.info)
    else:
        typer.echo(session.id)


@session_app.command("list")
def session_list(
    ctx: typer.Context,
    *,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many, newest first; 0 for all.", min=0)
    ] = 50,
) -> None:
    """List sessions, newest first (ended ones stay listed for 7 days)."""
    options = _options(ctx)
    with _reporting(options):
        sessions = options.gateway().list_sessions(limit=limit or None)
    if options.json:
        _print_json(sessions)
        return
    table = _table("SESSION", "STATUS", "ENVIRONMENT", "PROVIDER", "CREATED", "EXPIRES")
    for info in sessions:
        table.add_row(
            info.session_id,
            info.status,
            info.environment,
            info.provider,
            _cell(info.created_at),
            _cell(info.expires_at),
        )
    _print_table(table)


def _print_info(options: Options, info: Any) -> None:
    if options.json:
        _print_json(info)
        return
    table = _table(show_header=False)
    for key, value in _jsonable(info).items():
        table.add_row(key, _cell(value))
    _print_table(table)


@session_app.command("show")
def session_show(ctx: typer.Context, session_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show one session as of now."""
    options = _options(ctx)
    with _reporting(options):
        session = options.gateway().get_session(session_id)
    _print_info(options, session.info)


@session_app.command("keepalive")
def session_keepalive(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    timeout: Annotated[
        int | None, typer.Option("--timeout", "-t", help="New lifetime from now, in seconds.", min=1)
    ] = None,
) -> None:
    """Extend a session's lifetime (and its sandbox's)."""
    options = _options(ctx)
    with _reporting(options):
        info = options.gateway().session(session_id).keep_alive(timeout_seconds=timeout)
    _print_info(options, info)


@session_app.command("close")
def session_close(ctx: typer.Context, session_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Close a session and kill its sandbox (repeatable)."""
    options = _options(ctx)
    with _reporting(options):
        info = options.gateway().session(session_id).close()
    if options.json:
        _print_json(info)
    else:
        typer.echo(f"{info.session_id} {info.status}")


# --- run ------------------------------------------------------------------------------------


def _read_code(source: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        _fail(f"error: cannot read {source}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"error: {source} is not UTF-8 text", EXIT_USAGE)


def _infer_language(source: str) -> str | None:
    if source == "-":
        return None
    return LANGUAGE_BY_SUFFIX.get(Path(source).suffix.lower())


@contextmanager
def _ending_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so `finally` blocks (closing a session) run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except (GatewayError, httpx.HTTPError, KeyboardInterrupt) as exc:
        detail = f"{exc.code}: {exc.message}" if isinstance(exc, GatewayError) else str(exc) or "interrupted"
        typer.echo(
            f"warning: could not close session {session.id} ({detail}); it ends when it expires", err=True
        )


@contextmanager
def _ephemeral_session(gw: Gateway, environment: str, provider: str | None) -> Iterator[Session]:
    """A session that is closed whatever happens: an error, Ctrl-C, SIGTERM, even mid-creation."""
    key = f"sgw-run-{uuid.uuid4()}"
    with _ending_signals_interrupt():
        try:
            session = _start_session(gw, environment, provider=provider, idempotency_key=key)
        except KeyboardInterrupt:
            # The create may already be under way on the server: the same Idempotency-Key returns
            # that session (waiting while it is in flight) instead of a second one, so it can be closed.
            try:
                _close_quietly(gw.create_session(environment, provider=provider, idempotency_key=key))
            except (GatewayError, httpx.HTTPError, KeyboardInterrupt):
                typer.echo("warning: a session may have been started; it ends when it expires", err=True)
            raise
        try:
            yield session
        finally:
            _close_quietly(session)


def _session_for_run(
    gw: Gateway, session_id: str | None, environment: str | None, provider: str | None
) -> AbstractContextManager[Session]:
    """The session asked for, left open; or a new one, closed afterwards."""
    if session_id is not None:
        return nullcontext(gw.session(session_id))
    return _ephemeral_session(gw, environment or "e2b-python", provider)


def _unique_path(directory: Path, stem: str, suffix: str) -> Path:
    candidate = directory / f"{stem}.{suffix}"
    n = 1
    while candidate.exists():
        candidate = directory / f"{stem}-{n}.{suffix}"
        n += 1
    return candidate


class _ResultSaver:
    """Writes rich results to files, creating the default temporary directory only when needed."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.saved: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def _dir(self) -> Path:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="sgw-results-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    def save(self, execution: Execution, index: int, fmt: str, suffix: str, value: Any) -> None:
        stem = f"result-{execution.execution_count or 0}-{index}"
        try:
            data = _payload(value, binary=fmt in BINARY_FORMATS)
            path = _unique_path(self._dir(), stem, suffix)
            path.write_bytes(data)
        except (OSError, ValueError) as exc:  # an unwritable directory, a payload that is not base64
            self.failures.append(f"result {index} ({fmt}): {exc}")
            return
        self.saved.append({"result_index": index, "format": fmt, "path": str(path)})


def _payload(value: Any, binary: bool) -> bytes:
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, indent=2)
    return base64.b64decode(value, validate=True) if binary else value.encode("utf-8")


def _handle_results(execution: Execution, saver: _ResultSaver) -> list[str]:
    """Save file-like results; return the texts to print (a notebook's `Out`)."""
    texts: list[str] = []
    for index, result in enumerate(execution.results):
        files = 0
        for fmt, suffix in (BINARY_FORMATS | TEXT_FILE_FORMATS).items():
            if result.get(fmt) is not None:
                saver.save(execution, index, fmt, suffix, result[fmt])
                files += 1
        text = result.get("text")
        if text is not None and not files:
            texts.append(str(text))
        elif text is None and not files:
            for fmt, suffix in FALLBACK_FORMATS.items():
                if result.get(fmt) is not None:
                    saver.save(execution, index, fmt, suffix, result[fmt])
                    break
    return texts


def _strip_ansi_unless_terminal(text: str) -> str:
    return text if sys.stderr.isatty() else _ANSI.sub("", text)


def _report_execution(
    options: Options, execution: Execution, save_dir: Path | None, shown: dict[str, Any] | None = None
) -> int:
    """Print an execution as `sgw run` does and return its exit code; `shown` is the JSON document
    to print instead of the execution's own (an execution record around it)."""
    saver = _ResultSaver(save_dir)
    texts = _handle_results(execution, saver)
    if options.json:
        document = shown if shown is not None else _jsonable(execution)
        _print_json(document | {"saved_files": saver.saved, "save_errors": saver.failures})
    else:
        _write_raw("stdout", execution.stdout)
        _write_raw("stderr", execution.stderr)
        for text in texts:
            _write_raw("stdout", text if text.endswith("\n") else text + "\n")
        for saved in saver.saved:
            typer.echo(f"saved {saved['format']} result: {saved['path']}", err=True)
        if execution.truncated:
            typer.echo("warning: the output was truncated by the gateway", err=True)
        if execution.error is not None:
            error = _jsonable(execution.error)
            traceback = (error.get("traceback") or "").rstrip("\n")
            summary = f"{error.get('name')}: {error.get('value')}"
            if traceback:
                _write_raw("stderr", _strip_ansi_unless_terminal(traceback) + "\n")
            if not traceback or execution.status != "error":
                _write_raw("stderr", summary + "\n")
    for failure in saver.failures:
        typer.echo(f"error: cannot save {failure}", err=True)
    code = {"ok": EXIT_OK, "timeout": EXIT_TIMEOUT, "oom": EXIT_OOM}.get(execution.status, EXIT_CODE_RAISED)
    return EXIT_USAGE if code == EXIT_OK and saver.failures else code


@app.command(epilog=EXIT_CODES_HELP)
def run(
    ctx: typer.Context,
    *,
    source: Annotated[str, typer.Argument(metavar="FILE|-", help="Code to run; - reads stdin.")],
    session_id: Annotated[
        str | None,
        typer.Option(
            "--session",
            "-s",
            help="Run in this session (state persists). Without it, a new session is started "
            "and always closed afterwards.",
            show_default=False,
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            "-l",
            help="python, javascript, bash. Default: from the file's extension (.py, .js, .sh), "
            "else the environment's default.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        int | None,
        typer.Option("--timeout", "-t", help="Execution limit in seconds (server default if absent).", min=1),
    ] = None,
    save_results: Annotated[
        Path | None,
        typer.Option(
            "--save-results",
            "-o",
            help="Directory for image and other file results (png, jpeg, svg, pdf; html, markdown… "
            "when a result has no text). Default: a new temporary directory, made only when needed.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option(
            "--environment", "-e", help="For the new session (default e2b-python).", show_default=False
        ),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="For the new session.", show_default=False)
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="KEY=VALUE for this execution only, repeatable.", show_default=False),
    ] = None,
    asynchronous: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Queue it and print its execution id at once; `sgw execution wait ID` gives the "
            "result. Without --session it runs in a one-off session the gateway opens and closes. "
            "--timeout may then go up to the worker's limit (minutes).",
        ),
    ] = False,
    callback_url: Annotated[
        str | None,
        typer.Option(
            "--callback-url",
            help="With --async: an https URL the finished execution is POSTed to, signed "
            "(see `sgw callbacks secret`).",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="With --session or --async: the same key and code within 24 h give the first "
            "answer instead of running the code again.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a file (or stdin) and print its stdout and stderr as they are.

    Text results go to stdout; file results are saved and their paths printed on stderr.

    An error's traceback goes to stderr; the exit code says how the code ended.
    """
    options = _options(ctx)
    if session_id is not None and (environment is not None or provider is not None):
        raise typer.BadParameter("--environment/--provider apply to a new session, not to --session")
    if not asynchronous:
        if callback_url is not None:
            raise typer.BadParameter("--callback-url needs --async")
        if idempotency_key is not None and session_id is None:
            # A session of its own is new on every attempt: the key would never match a first run.
            raise typer.BadParameter("--idempotency-key needs --session or --async")
    elif provider is not None:
        raise typer.BadParameter(
            "--provider does not apply to --async (its one-off session takes --environment)"
        )
    elif save_results is not None:
        raise typer.BadParameter("--save-results applies to `sgw execution wait`, not to --async")
    envs = _key_values(env, "--env")
    code = _read_code(source)
    language = language or _infer_language(source)
    if asynchronous:
        _submit(
            options,
            code,
            session_id=session_id,
            environment=environment,
            language=language,
            timeout=timeout,
            envs=envs,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
        return
    with _reporting(options):
        gw = options.gateway()
        with _session_for_run(gw, session_id, environment, provider) as session, _spinner("Running…"):
            execution = session.run(
                code, language=language, timeout_seconds=timeout, envs=envs, idempotency_key=idempotency_key
            )
    raise typer.Exit(_report_execution(options, execution, save_results))


def _submit(
    options: Options,
    code: str,
    *,
    session_id: str | None,
    environment: str | None,
    language: str | None,
    timeout: int | None,
    envs: dict[str, str] | None,
    callback_url: str | None,
    idempotency_key: str | None,
) -> None:
    given: dict[str, Any] = {
        "language": language,
        "timeout_seconds": timeout,
        "envs": envs,
        "callback_url": callback_url,
        "idempotency_key": idempotency_key,
    }
    with _reporting(options):
        gw = options.gateway()
        if session_id is not None:
            queued = gw.session(session_id).submit(code, **given)
        else:
            queued = gw.submit(code, environment=environment or "e2b-python", **given)
    if options.json:
        _print_json(queued)
        return
    typer.echo(queued.execution_id)
    typer.echo(f"{queued.status}; its result: sgw execution wait {queued.execution_id}", err=True)


# --- executions -----------------------------------------------------------------------------

RECORD_EXIT_CODES = {"succeeded": EXIT_OK, "timed_out": EXIT_TIMEOUT}  # failed: EXIT_CODE_RAISED


def _record_rows(record: ExecutionRecord) -> dict[str, Any]:
    """A record as shown in a table: the result as its status (`sgw execution wait` prints it)."""
    rows = _jsonable(record)
    result = rows.pop("result")
    rows["result"] = result.get("status") if isinstance(result, dict) else None
    return rows


@execution_app.command("get")
def execution_get(ctx: typer.Context, execution_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show an execution as of now: its status, times, failure and where its result is."""
    options = _options(ctx)
    with _reporting(options):
        record = options.gateway().get_execution(execution_id)
    _print_info(options, record if options.json else _record_rows(record))


@execution_app.command("wait", epilog=EXIT_CODES_HELP)
def execution_wait(
    ctx: typer.Context,
    *,
    execution_id: Annotated[str, typer.Argument(metavar="ID")],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", "-t", help="Give up after this many seconds (exit 75); default: no limit.", min=0
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between two looks.", min=0.1)
    ] = 1.0,
    save_results: Annotated[
        Path | None,
        typer.Option(
            "--save-results",
            "-o",
            help="Directory for image and other file results, as `sgw run`'s.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Wait until an execution is finished, then print its output and exit as `sgw run` would.

    A large result is downloaded from its presigned URL. An execution the gateway could not run
    (its session ended, a quota) exits 3 with its error code.
    """
    options = _options(ctx)
    with _reporting(options):
        try:
            with _spinner(f"Waiting for {execution_id}…"):
                record = options.gateway().wait(
                    execution_id, timeout=timeout, poll_interval=poll_interval, fetch=True
                )
        except TimeoutError as exc:
            if options.json:
                _print_json({"error": {"code": "still_running", "message": str(exc)}})
            _fail(f"error: {exc}", EXIT_PENDING)
    shown = _jsonable(record)
    execution = record.execution
    if execution is None:  # no output to show
        if options.json:
            _print_json(shown)
        if record.failure is not None:  # the gateway could not run it, as `sgw run` reports an API error
            _fail(f"error: {record.failure.code}: {record.failure.message}", EXIT_API_ERROR)
        typer.echo(f"warning: execution {record.status}, but its result is no longer stored", err=True)
        raise typer.Exit(RECORD_EXIT_CODES.get(record.status, EXIT_CODE_RAISED))
    raise typer.Exit(_report_execution(options, execution, save_results, shown=shown))


@app.command("executions")
def executions_command(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="SESSION_ID")],
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many, newest first; 0 for all.", min=0)
    ] = 50,
) -> None:
    """List a session's executions, newest first (`sgw execution wait ID` prints one's output)."""
    options = _options(ctx)
    with _reporting(options):
        found = options.gateway().session(session_id).executions(limit=limit or None)
    if options.json:
        _print_json(found)
        return
    table = _table("EXECUTION", "STATUS", "MODE", "SOURCE", "LANGUAGE", "CREATED", "FINISHED")
    for record in found:
        table.add_row(
            record.execution_id,
            record.status,
            record.mode,
            record.source,
            _cell(record.language),
            _cell(record.created_at),
            _cell(record.finished_at),
        )
    _print_table(table)


@callbacks_app.command("secret")
def callbacks_secret(
    ctx: typer.Context,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace it first: the old one stops signing at once.")
    ] = False,
) -> None:
    """Print the key that signs callbacks (Sandbox-Gateway-Signature); check them with
    sandbox_gateway_client.verify_signature."""
    options = _options(ctx)
    with _reporting(options):
        gw = options.gateway()
        secret = gw.rotate_callback_secret() if rotate else gw.callback_secret()
    if options.json:
        _print_json({"secret": secret})
    else:
        typer.echo(secret)


# --- files ----------------------------------------------------------------------------------


@files_app.command("put")
def files_put(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    local: Annotated[str, typer.Argument(metavar="LOCAL|-", help="Local file; - reads stdin.")],
    remote: Annotated[
        str, typer.Argument(metavar="REMOTE", help="Sandbox path (relative: under /workspace).")
    ],
) -> None:
    """Upload a local file into the sandbox."""
    options = _options(ctx)
    try:
        data = sys.stdin.buffer.read() if local == "-" else Path(local).read_bytes()
    except OSError as exc:
        _fail(f"error: cannot read {local}: {exc.strerror or exc}", EXIT_USAGE)
    with _reporting(options), _transfer(f"put {remote}") as progress:
        written = options.gateway().session(session_id).files.write(remote, data, progress=progress)
    if options.json:
        _print_json(written)
    else:
        typer.echo(f"{written.path} {written.size} bytes")


@files_app.command("get")
def files_get(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    remote: Annotated[
        str, typer.Argument(metavar="REMOTE", help="Sandbox path (relative: under /workspace).")
    ],
    local: Annotated[
        str | None,
        typer.Argument(
            metavar="[LOCAL|-]",
            help="Local file or directory; - writes the bytes to stdout. Default: REMOTE's name here.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a file from the sandbox."""
    options = _options(ctx)
    target: Path | None = None
    if local != "-":
        name = Path(remote.rstrip("/")).name
        if not name:
            raise typer.BadParameter("REMOTE names no file", param_hint="REMOTE")
        target = Path(local) if local else Path(name)
        if target.is_dir() or (local or "").endswith("/"):  # a trailing slash means a directory
            target = target / name
    with _reporting(options), _transfer(f"get {remote}") as progress:
        data = options.gateway().session(session_id).files.read(remote, progress=progress)
    if target is None:
        binary = _binary("stdout")
        binary.write(data)
        binary.flush()
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        _fail(f"error: cannot write {target}: {exc.strerror or exc}", EXIT_USAGE)
    if options.json:
        _print_json({"session_id": session_id, "path": remote, "local": str(target), "size": len(data)})
    else:
        typer.echo(f"{target} {len(data)} bytes")


@files_app.command("ls")
def files_ls(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    directory: Annotated[str, typer.Argument(metavar="[DIR]", help="Sandbox directory.")] = "/workspace",
) -> None:
    """List a sandbox directory."""
    options = _options(ctx)
    with _reporting(options):
        entries = options.gateway().session(session_id).files.list(directory)
    if options.json:
        _print_json(entries)
        return
    table = _table("NAME", "TYPE", "SIZE", "MODIFIED")
    table.columns[2].justify = "right"
    for entry in entries:
        name = f"{entry.name}/" if str(entry.type) == "directory" else entry.name
        table.add_row(name, entry.type, _cell(entry.size), _cell(entry.modified_at))
    _print_table(table)


@files_app.command("rm")
def files_rm(
    ctx: typer.Context,
    *,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    remote: Annotated[
        str, typer.Argument(metavar="REMOTE", help="Sandbox path (relative: under /workspace).")
    ],
) -> None:
    """Delete a file in the sandbox (silent on success, like rm)."""
    options = _options(ctx)
    with _reporting(options):
        options.gateway().session(session_id).files.delete(remote)
    if options.json:
        _print_json({"session_id": session_id, "path": remote, "deleted": True})


# --- usage (the caller's own tenant) ----------------------------------------------------------

DayOption = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD (UTC).", show_default=False)
]

USAGE_COLUMNS = {
    "sessions_created": "SESSIONS",
    "executions": "EXECUTIONS",
    "sandbox_seconds": "SANDBOX SECONDS",
    "bytes_uploaded": "UPLOADED",
    "bytes_downloaded": "DOWNLOADED",
}


def _usage_table(first_header: str) -> Table:
    table = _table(first_header, *USAGE_COLUMNS.values())
    for column in table.columns[1:]:
        column.justify = "right"
    return table


def _print_usage(usage: Usage) -> None:
    summary = _table(show_header=False)
    summary.add_row("tenant", usage.tenant_id)
    summary.add_row("active sessions", f"{usage.active_sessions} of {usage.quotas.max_active_sessions}")
    for name, value in _jsonable(usage.quotas).items():
        if name != "max_active_sessions":
            summary.add_row(name, str(value))
    _print_table(summary)
    typer.echo()
    days = _usage_table("DAY")
    for day in usage.days:
        days.add_row(day.day, *(str(getattr(day, name)) for name in USAGE_COLUMNS))
    _print_table(days)


@app.command("usage")
def usage_command(ctx: typer.Context, *, since: DayOption = None, until: DayOption = None) -> None:
    """Your tenant's usage per day (default: the last 30 days), live sessions and quotas."""
    options = _options(ctx)
    with _reporting(options):
        usage = options.gateway().usage(
            since=since.date() if since else None, until=until.date() if until else None
        )
    if options.json:
        _print_json(usage)
    else:
        _print_usage(usage)


# --- admin: keys, quotas and every tenant's usage, in the table itself ---------------------------

# A tenant id travels in keys, container labels and table keys: keep it plain.
TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_ID = re.compile(r"^[0-9a-f]{12}$")
QUOTA_NAMES = (
    "max_active_sessions",
    "max_session_seconds",
    "max_execution_seconds",
    "max_code_bytes",
    "max_file_bytes",
)
DEFAULT_AUTHORIZER_CACHE_SECONDS = 300  # template.yaml's AuthorizerCacheSeconds default
LOCAL_REGION = "us-east-1"


@dataclasses.dataclass
class AdminOptions:
    table: str
    endpoint_url: str | None
    region: str | None

    _store: Any = dataclasses.field(default=None, repr=False)

    def store(self) -> Any:
        """The service's DynamoDBTenantStore on the sessions table (imported only here)."""
        if self._store is None:
            import boto3  # noqa: PLC0415 - the service's dependency, not the client's
            from botocore.exceptions import BotoCoreError  # noqa: PLC0415
            from sandbox_gateway.adapters.tenants import DynamoDBTenantStore  # noqa: PLC0415

            session = boto3.session.Session(region_name=self.region)
            credentials: dict[str, str] = {}
            if self.endpoint_url and session.get_credentials() is None:
                # A local endpoint (moto) takes any credentials; a shell without AWS ones is normal there.
                credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
            region = self.region or session.region_name or (LOCAL_REGION if self.endpoint_url else None)
            try:
                resource = session.resource(
                    "dynamodb", endpoint_url=self.endpoint_url, region_name=region, **credentials
                )
            except BotoCoreError as exc:
                _fail(f"error: {exc} (pass --region or set AWS_REGION)", EXIT_USAGE)
            self._store = DynamoDBTenantStore(resource.Table(self.table))
        return self._store

    def where(self) -> str:
        return f"table {self.table}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def _admin(ctx: typer.Context) -> tuple[Options, AdminOptions]:
    admin = ctx.find_object(AdminOptions)
    assert admin is not None, "the admin callback sets its options"
    return _options(ctx), admin


@contextmanager
def _admin_reporting(options: Options, admin: AdminOptions) -> Iterator[None]:
    """The store's errors (a missing table, no credentials, access denied) as exit code 3."""
    from sandbox_gateway.models.errors import DomainError  # noqa: PLC0415

    try:
        yield
    except DomainError as exc:
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        message = f"{exc.message}{detail}; {admin.where()}"
        if options.json:
            _print_json({"error": {"code": exc.code, "message": message}})
        _fail(f"error: {exc.code}: {message}", EXIT_API_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)


def _not_found(options: Options, code: str, message: str) -> NoReturn:
    if options.json:
        _print_json({"error": {"code": code, "message": message}})
    _fail(f"error: {code}: {message}", EXIT_API_ERROR)


def _tenant(value: str) -> str:
    if not TENANT_ID.fullmatch(value):
        raise typer.BadParameter(
            "letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"
        )
    return value


def _when(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_json(key: Any) -> dict[str, Any]:
    """A stored key as shown: never the key nor its hash (the record carries neither)."""
    return {
        "key_id": key.key_id,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "scopes": list(key.scopes),
        "status": str(key.status),
        "created_at": _when(key.created_at),
        "last_used_at": _when(key.last_used_at),
    }


@admin_app.callback()
def admin_options(
    ctx: typer.Context,
    table: Annotated[
        str, typer.Option("--table", envvar="TABLE_NAME", help="The stack's sessions table.")
    ] = "sandbox-gateway-sessions",
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            envvar="DYNAMODB_ENDPOINT_URL",
            help="DynamoDB endpoint (the local stack's moto server); AWS when absent.",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"], help="AWS region.", show_default=False
        ),
    ] = None,
) -> None:
    try:
        import sandbox_gateway.adapters.tenants  # noqa: F401, PLC0415 - only the admin commands need it
    except ImportError as exc:
        _fail(
            f"error: `sgw admin` needs the service package (sandbox_gateway), which is not installed "
            f"({exc}): run it from the project's venv, or `pip install -e .` in the project's checkout",
            EXIT_USAGE,
        )
    ctx.obj = AdminOptions(table=table, endpoint_url=endpoint_url or None, region=region or None)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    *,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.", callback=_tenant)],
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown by list).")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="sessions, execute, files, usage; repeatable. Default: all four.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a key and print it ONCE on stdout: only its hash is stored, it cannot be shown again."""
    from sandbox_gateway.models.tenant import SCOPES  # noqa: PLC0415

    options, admin = _admin(ctx)
    scopes = list(dict.fromkeys(scope)) if scope else list(SCOPES)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown)}; scopes are {', '.join(SCOPES)}", param_hint="--scope"
        )
    with _admin_reporting(options, admin):
        record, key = admin.store().create_key(tenant, name, scopes, int(time.time()))
    if options.json:
        _print_json(
            {"key": key, "key_id": record.key_id, "tenant_id": tenant, "name": name, "scopes": scopes}
        )
    else:
        typer.echo(key)
    typer.echo(
        f"created key {record.key_id} for tenant {tenant} (scopes: {', '.join(scopes)}). "
        "Save it now: it cannot be shown again (only its hash is stored).",
        err=True,
    )


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's keys.", show_default=False)
    ] = None,
) -> None:
    """List keys, newest first: ids, tenants, names, scopes, status and times (never a key or hash)."""
    options, admin = _admin(ctx)
    with _admin_reporting(options, admin):
        keys = [_key_json(key) for key in admin.store().list_keys(tenant)]
    if options.json:
        _print_json(keys)
        return
    table = _table("KEY ID", "TENANT", "NAME", "SCOPES", "STATUS", "CREATED", "LAST USED")
    for key in keys:
        table.add_row(
            key["key_id"],
            key["tenant_id"],
            key["name"] or "-",
            ",".join(key["scopes"]),
            key["status"],
            _cell(key["created_at"]),
            _cell(key["last_used_at"]),
        )
    _print_table(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke a key: refused within the authorizer's cache TTL (AuthorizerCacheSeconds, 300 s by default)."""
    options, admin = _admin(ctx)
    if not KEY_ID.fullmatch(key_id):
        raise typer.BadParameter("a key id is 12 hex digits (see `sgw admin keys list`)", param_hint="KEY_ID")
    with _admin_reporting(options, admin):
        record = admin.store().revoke_key(key_id)
    if record is None:
        _not_found(options, "key_not_found", f"no key {key_id} in {admin.where()}")
    if options.json:
        _print_json(_key_json(record))
    else:
        typer.echo(f"{record.key_id} {record.status}")
    typer.echo(
        f"Key {record.key_id} (tenant {record.tenant_id}) is revoked. API Gateway caches the authorizer's "
        f"answers: requests with it may still pass for up to AuthorizerCacheSeconds "
        f"({DEFAULT_AUTHORIZER_CACHE_SECONDS} s by default).",
        err=True,
    )


def _quota_report(admin: AdminOptions, tenant: str) -> dict[str, Any]:
    state = admin.store().tenant(tenant)  # one read: overrides and live sessions together
    return {
        "tenant_id": tenant,
        "active_sessions": max(0, state.active_sessions),
        "overrides": state.quota_overrides,
    }


def _print_quotas(options: Options, report: dict[str, Any]) -> None:
    if options.json:
        _print_json(report)
        return
    table = _table("QUOTA", "VALUE")
    table.add_row("active sessions now", str(report["active_sessions"]))
    for name in QUOTA_NAMES:
        value = report["overrides"].get(name)
        table.add_row(name, "default" if value is None else str(value))
    _print_table(table)


@quotas_app.command("show")
def quotas_show(
    ctx: typer.Context, tenant: Annotated[str, typer.Argument(metavar="TENANT", callback=_tenant)]
) -> None:
    """A tenant's live sessions and quota overrides ("default": the deployment's value; `sgw usage`
    with the tenant's key shows the values in force)."""
    options, admin = _admin(ctx)
    with _admin_reporting(options, admin):
        report = _quota_report(admin, tenant)
    _print_quotas(options, report)


QuotaOption = Annotated[int | None, typer.Option(min=1, show_default=False)]


@quotas_app.command("set")
def quotas_set(
    ctx: typer.Context,
    *,
    tenant: Annotated[str, typer.Argument(metavar="TENANT", callback=_tenant)],
    max_active_sessions: QuotaOption = None,
    max_session_seconds: QuotaOption = None,
    max_execution_seconds: QuotaOption = None,
    max_code_bytes: QuotaOption = None,
    max_file_bytes: QuotaOption = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Clear every override first (back to the defaults).")
    ] = False,
) -> None:
    """Override a tenant's quotas (the others keep their values). Lifetime, execution timeout and
    sizes can only be lowered below the deployment's limits, which still apply."""
    given = {
        "max_active_sessions": max_active_sessions,
        "max_session_seconds": max_session_seconds,
        "max_execution_seconds": max_execution_seconds,
        "max_code_bytes": max_code_bytes,
        "max_file_bytes": max_file_bytes,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes and not reset:
        raise typer.BadParameter("give at least one --max-… option, or --reset")
    options, admin = _admin(ctx)
    with _admin_reporting(options, admin):
        store = admin.store()
        overrides = {} if reset else store.quota_overrides(tenant)
        store.set_quota_overrides(tenant, overrides | changes)
        report = _quota_report(admin, tenant)
    _print_quotas(options, report)


@admin_app.command("usage")
def admin_usage(
    ctx: typer.Context,
    day: Annotated[
        datetime | None,
        typer.Option(
            "--day", formats=["%Y-%m-%d"], help="YYYY-MM-DD (UTC). Default: today.", show_default=False
        ),
    ] = None,
) -> None:
    """Every tenant's usage counters for one UTC day."""
    options, admin = _admin(ctx)
    wanted = (day or datetime.now(UTC)).strftime("%Y-%m-%d")
    with _admin_reporting(options, admin):
        found = admin.store().usage_of_every_tenant(wanted)
    rows = [{"tenant_id": u.tenant_id, "day": u.day, **u.counters} for u in found]
    if options.json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"no usage recorded on {wanted}", err=True)
    table = _usage_table("TENANT")
    for row in rows:
        table.add_row(row["tenant_id"], *(str(row.get(name, 0)) for name in USAGE_COLUMNS))
    _print_table(table)


def main() -> None:
    """Console-script entry point (`sgw`)."""
    app()


if __name__ == "__main__":
    main()

"""`make dev`: the whole service offline on http://127.0.0.1:3000 (its AWS endpoint, moto, on
http://127.0.0.1:4566), stopped with Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from dotenv import dotenv_values
from sandbox_gateway.config import Settings

from local.aws import FAKE_AWS
from local.stack import (
    AWS_PORT,
    CACHE_SECONDS_VARIABLE,
    DEV_KEY_FORMAT,
    DEV_KEY_VARIABLE,
    REAPER_INTERVAL_SECONDS,
    TABLE_NAME,
    AwsPortInUse,
    running_stack,
)
from local.template import ROOT, http_api_authorizers

DOTENV = ROOT / ".env"
# Small and non-zero on the local host, so a create is instant; none on real E2B, which bills for it.
DEFAULT_WARM_POOL = "e2b-python=1"

BANNER = """
Sandbox Gateway is running at {url}  (sandboxes: {backend})
Settings: {dotenv}

API key (tenant {tenant}, every scope; {key_origin}):
  {api_key}

For curl, the sgw CLI and the Python client:
  export SGW_URL={url} SGW_API_KEY={api_key}

  curl -s -X POST {url}/api/sessions -H "Authorization: Bearer $SGW_API_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{{"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}}'
  curl -s -X POST {url}/api/e2b/execute -H "Authorization: Bearer $SGW_API_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{{"session_id": "<session_id>", "code": "x = 21\\nprint(x * 2)", "language": "python"}}'

For `sgw admin` (keys, quotas and usage, in this stack's table):
  export TABLE_NAME={table} DYNAMODB_ENDPOINT_URL={dynamodb_url}

AWS endpoint (moto: DynamoDB, SQS, EventBridge, S3). In a shell for this stack only, boto3 and
AWS CLI v2 then talk to it (AWS CLI v1 needs --endpoint-url for SQS), with credentials it accepts:
  export AWS_ENDPOINT_URL={aws_url} AWS_ACCESS_KEY_ID={access_key} AWS_SECRET_ACCESS_KEY={secret_key} \\
         AWS_DEFAULT_REGION={region}
  export SGW_QUEUE_URL={queue_url} SGW_EVENT_BUS={event_bus} \\
         SGW_COMPLETIONS_QUEUE_URL={completions_queue_url}
  aws --endpoint-url $AWS_ENDPOINT_URL sqs receive-message --queue-url $SGW_COMPLETIONS_QUEUE_URL \\
      --wait-time-seconds 20 --max-number-of-messages 10   # completion events
Dead-letter queue: {dead_letter_queue_url}
Results bucket: {results_bucket}

API reference: {url}/api/docs (Swagger UI), {url}/api/openapi.json (both without a key)
Authorizer: answers cached {cache} per key, so a revoked key works until then
Docker provider: {docker}
Reaper: every {reaper:g} s, expired sessions end and their sandboxes are killed
Warm pool: {warm_pool}
Function logs (JSON) and metrics (EMF): {log}

Ctrl-C stops everything.
"""


def load_dotenv(path: Path = DOTENV) -> tuple[list[str], list[str]]:
    """Put the variables of `path` (a .env file) into os.environ, never replacing one already set:
    the shell wins over the file. Returns (names loaded, names skipped as already set)."""
    if not path.is_file():
        return [], []
    loaded: list[str] = []
    skipped: list[str] = []
    for name, value in dotenv_values(path).items():
        if value is None:  # a bare `NAME` line sets nothing
            continue
        if name in os.environ:
            skipped.append(name)
            continue
        os.environ[name] = value
        loaded.append(name)
    return loaded, skipped


def describe_dotenv(path: Path, loaded: list[str], skipped: list[str]) -> str:
    if not path.is_file():
        return f"the environment only (no {path.name}; see .env.example)"
    text = f"{path} ({len(loaded)} set"
    if skipped:
        text += f"; already set in the environment, kept: {', '.join(sorted(skipped))}"
    return text + ")"


def docker_status() -> str:
    try:
        import docker  # noqa: PLC0415 - optional for `make dev`

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"not available ({type(exc).__name__}); `make docker` installs and starts an engine"
    return "docker-python, docker-node, docker-bash are available"


def cache_description() -> str:
    """How long the local gateway keeps an authorizer's answer: the template's TTL unless overridden."""
    override = os.environ.get(CACHE_SECONDS_VARIABLE)
    if override:
        return f"{float(override):g} s ({CACHE_SECONDS_VARIABLE})"
    ttls = sorted({a.cache_seconds for a in http_api_authorizers().values()})
    return " / ".join(f"{ttl} s" for ttl in ttls) + " (template.yaml)" if ttls else "never (no authorizer)"


def main(argv: list[str] | None = None) -> int:
    # Before the arguments: E2B_API_KEY in .env picks the default provider.
    loaded, skipped = load_dotenv(DOTENV)
    parser = argparse.ArgumentParser(prog="python -m local.dev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--provider",
        choices=["local", "e2b"],
        default="e2b" if os.environ.get("E2B_API_KEY") else "local",
        help="e2b-* environments on the local E2B-compatible host (default; offline) or on real E2B "
        "(the default when E2B_API_KEY is set)",
    )
    parser.add_argument(
        "--docker",
        action="store_true",
        help="first make sure a Docker engine runs and the sandbox image exists (docker-* environments)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="most worker processes per function: one starts when all are busy, idle ones stay warm",
    )
    parser.add_argument(
        "--reaper-interval",
        type=float,
        default=REAPER_INTERVAL_SECONDS,
        help="seconds between reaper runs (expired sessions and their sandboxes; 0 turns it off)",
    )
    parser.add_argument(
        "--warm-pool",
        default=None,
        help="sandboxes booted ahead per environment, e.g. e2b-python=2,docker-python=1, so a create binds "
        f"one at once (default {DEFAULT_WARM_POOL} on the local host, none on E2B; empty: none); "
        "refilled with the reaper",
    )
    parser.add_argument(
        "--aws-port",
        type=int,
        default=AWS_PORT,
        help=f"port of the AWS endpoint on 127.0.0.1: DynamoDB, SQS, EventBridge, S3 (default {AWS_PORT})",
    )
    args = parser.parse_args(argv)
    if args.warm_pool is None:
        args.warm_pool = DEFAULT_WARM_POOL if args.provider == "local" else ""
    try:
        Settings.from_environ({"WARM_POOL": args.warm_pool})
    except ValueError as exc:
        parser.exit(2, f"invalid --warm-pool: {exc}\n")
    try:
        # A bad value in .env or the shell is reported here, not by every request's cold start.
        Settings.from_environ()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        parser.exit(2, f"invalid settings in the environment or {DOTENV}:\n{exc}\n")
    given_key = os.environ.get(DEV_KEY_VARIABLE) or None
    if given_key is not None and not DEV_KEY_FORMAT.fullmatch(given_key):
        parser.exit(2, f"{DEV_KEY_VARIABLE} is not a key: sgw_<12 hex>_<43 base64url characters>\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every call

    if args.docker:
        subprocess.run(["bash", str(ROOT / "scripts/ensure-docker.sh")], check=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.ExitStack() as running:
        try:
            stack = running.enter_context(
                running_stack(
                    host=args.host,
                    port=args.port,
                    provider=args.provider,
                    concurrency=args.concurrency,
                    reaper_interval_seconds=args.reaper_interval,
                    api_key=given_key,
                    aws_port=args.aws_port,
                    warm_pool=args.warm_pool,
                )
            )
        except AwsPortInUse as exc:
            parser.exit(2, f"{exc}\n")
        backend = f"local E2B-compatible host at {stack.e2b_url}" if stack.e2b_url else "E2B cloud"
        docker = docker_status()
        print(
            BANNER.format(
                url=stack.url,
                api_key=stack.api_key,
                tenant=stack.tenant_id,
                key_origin=f"from {DEV_KEY_VARIABLE}" if given_key else f"new: {DEV_KEY_VARIABLE} fixes one",
                table=TABLE_NAME,
                dynamodb_url=stack.dynamodb_url,
                aws_url=stack.aws_url,
                access_key=FAKE_AWS["AWS_ACCESS_KEY_ID"],
                secret_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
                region=FAKE_AWS["AWS_DEFAULT_REGION"],
                queue_url=stack.queue_url,
                event_bus=stack.event_bus_name,
                completions_queue_url=stack.completions_queue_url,
                dead_letter_queue_url=stack.dead_letter_queue_url,
                results_bucket=stack.results_bucket,
                cache=cache_description(),
                backend=backend,
                docker=docker,
                log=stack.function_log,
                reaper=args.reaper_interval,
                warm_pool=(
                    f"{args.warm_pool} booted ahead (refilled with the reaper)" if args.warm_pool else "none"
                ),
                dotenv=describe_dotenv(DOTENV, loaded, skipped),
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

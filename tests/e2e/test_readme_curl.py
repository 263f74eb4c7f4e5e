"""README.md's curl examples, run as written with the real curl against the local stack, so the
README cannot drift from the API.

Every ```bash / ```sh block of the README that calls the API with curl is run command by command,
in order, with `API` set to the stack's URL, `SGW_API_KEY` to its dev key (as `make dev` prints
them) and `SID` to a session made for that block. Each call
must answer the success status the spec (openapi.json) documents for its operation, and the
status the README's own comment names, when it names one (`# 204`, `# Create (201)`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from local.stack import Stack
from tests.e2e.conftest import Client
from tests.support.docker_engine import in_ci, require_docker_image

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SPEC = ROOT / "openapi.json"
DOCUMENTED_URL = "http://127.0.0.1:3000"  # what the README tells the reader to set API to
MARK = "@@curl-status@@"
# curl's own report after each call; the body goes wherever the example sends it.
WRITE_OUT = f"\\n{MARK} %{{http_code}} %{{method}} %{{url_effective}}\\n"
# A status the README names next to a call: `# 204` after it, or `(201)` in the comment before it.
TRAILING_STATUS = re.compile(r"#\s*([1-5]\d\d)\b")
PRECEDING_STATUS = re.compile(r"\(([1-5]\d\d)\)")
SENDS_THE_KEY = '-H "Authorization: Bearer $SGW_API_KEY"'
PUBLIC_PATHS = ("/api/openapi.json", "/api/docs")  # the only routes without the authorizer


@dataclass
class Command:
    line: int  # 1-based line in README.md where the command starts
    text: str  # continuation lines joined, as bash will read it
    documented_status: int | None


@dataclass
class Block:
    line: int
    commands: list[Command] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # e.g. `make dev ARGS=--docker`

    @property
    def source(self) -> str:
        return "\n".join(command.text for command in self.commands)


def readme_blocks(text: str) -> list[Block]:
    """The bash/sh blocks that call curl, with their commands in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not re.fullmatch(r"```(bash|sh)\s*", lines[index]):
            index += 1
            continue
        block = Block(line=index + 1)
        comments: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].startswith("```"):
            start = index
            logical = lines[index]
            while logical.endswith("\\") and index + 1 < len(lines):
                index += 1  # keep the backslash-newline: bash joins the lines itself
                logical += "\n" + lines[index]
            index += 1
            stripped = logical.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                comments.append(stripped)
                continue
            if stripped.startswith("curl "):
                block.commands.append(Command(start + 1, stripped, _documented_status(stripped, comments)))
            else:
                block.not_run.append(stripped)
            comments = []
        index += 1
        if block.commands:
            blocks.append(block)
    return blocks


def _documented_status(command: str, comments: list[str]) -> int | None:
    last_line = command.splitlines()[-1]
    if "#" in last_line and (match := TRAILING_STATUS.search(last_line[last_line.index("#") :])):
        return int(match.group(1))
    for comment in reversed(comments):
        if match := PRECEDING_STATUS.search(comment):
            return int(match.group(1))
    return None


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _block_id(block: Block) -> str:
    first = re.search(r"/api/(\w+(?:/\w+)?)", block.commands[0].text)
    name = f"L{block.line}-{first.group(1).replace('/', '-') if first else 'curl'}"
    # "[docker" in the test id: the summary counts it among the tests that ran on Docker.
    return f"docker-{name}" if "docker" in block.source else name


# --- the spec: which operation a call hits, and the success status it documents ---------------
def _operations() -> list[tuple[str, re.Pattern[str], list[int]]]:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    operations = []
    for template, methods in spec["paths"].items():
        pattern = re.escape(template)
        # {file_path} is API Gateway's greedy {file_path+}: it spans slashes.
        pattern = pattern.replace(re.escape("{file_path}"), ".+")
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", pattern)
        for method, operation in methods.items():
            # Several only where a request picks one (execute: 200, or 202 for "mode": "async").
            success = [int(code) for code in operation["responses"] if code.startswith("2")]
            operations.append((method.upper(), re.compile(pattern + "$"), success))
    return operations


def spec_success_statuses(method: str, path: str) -> list[int]:
    matches = [status for m, pattern, status in _operations() if m == method and pattern.match(path)]
    assert matches, f"the README calls {method} {path}, which openapi.json does not document"
    # /api/sessions/{session_id} and .../keepalive never both match; take the only one.
    assert len(matches) == 1, f"{method} {path} matches {len(matches)} operations"
    return matches[0]


# --- running ----------------------------------------------------------------------------------
@dataclass
class Call:
    command: Command
    status: int
    method: str
    path: str
    body: str


def run_command(command: Command, env: dict[str, str], cwd: Path) -> Call:
    text = command.text.replace(DOCUMENTED_URL, env["API"])
    # The README's own flags stay; curl's report goes after the body (or alone, with -o).
    script = f"set -euo pipefail\ncurl() {{ command curl \"$@\" -w '{WRITE_OUT}'; }}\n{text}\n"
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"README line {command.line} failed ({done.returncode}):\n{done.stderr}"
    body, _, report = done.stdout.rpartition(MARK)
    assert report, f"README line {command.line}: curl reported nothing\n{done.stdout}\n{done.stderr}"
    status, method, url = report.split()
    return Call(command, int(status), method, urlsplit(url).path, body.rstrip("\n"))


def session_ids(client: Client) -> set[str]:
    found: set[str] = set()
    token: str | None = None
    while True:
        params = {"limit": "100"} | ({"next_token": token} if token else {})
        page = client.request("GET", "/api/sessions", params=params)
        assert page.status_code == 200, page.text
        found |= {item["session_id"] for item in page.json()["sessions"]}
        token = page.json().get("next_token")
        if not token:
            return found


@pytest.fixture
def created_sessions(client: Client) -> Iterator[list[str]]:
    """Every session this test makes is closed at its end, whether it passed or not."""
    before = session_ids(client)
    made: list[str] = []
    yield made
    for session_id in sorted((session_ids(client) - before) | set(made)):
        closed = client.request("DELETE", f"/api/sessions/{session_id}")
        assert closed.status_code == 200, closed.text
        assert client.request("GET", f"/api/sessions/{session_id}").json()["status"] == "closed"


def test_the_readme_shows_curl_examples_for_every_route_group() -> None:
    commands = [command.text for block in BLOCKS for command in block.commands]
    assert len(commands) >= 10, f"found only {len(commands)} curl examples in README.md"
    for route in ("/api/sessions", "/api/e2b/execute", "/api/e2b/files", "/api/environments"):
        assert any(route in text for text in commands), f"no curl example for {route}"
    for text in commands:
        assert "$API/" in text or DOCUMENTED_URL in text, f"a curl example not against $API: {text}"
    assert f"API={DOCUMENTED_URL}" in README.read_text(encoding="utf-8")
    for text in commands:
        if not any(path in text for path in PUBLIC_PATHS):
            assert SENDS_THE_KEY in text, f"a curl example without the API key: {text}"
    assert all(not_run.startswith("make ") for block in BLOCKS for not_run in block.not_run), [
        block.not_run for block in BLOCKS
    ]


@pytest.mark.parametrize("block", BLOCKS, ids=[_block_id(block) for block in BLOCKS])
def test_readme_curl_block_answers_the_documented_statuses(
    block: Block, stack: Stack, client: Client, created_sessions: list[str], tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        # scripts/ensure-system-packages.sh installs it; CI must run these.
        (pytest.fail if in_ci() else pytest.skip)("README CURL EXAMPLES NOT RUN: no curl on PATH")
    if "docker" in block.source:
        require_docker_image()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "API": stack.url, "SGW_API_KEY": stack.api_key}
    if "$SID" in block.source:
        provider = "docker" if '"provider": "docker"' in block.source else "e2b"
        environment = "docker-python" if provider == "docker" else "e2b-python"
        env["SID"] = client.create_session(environment=environment, provider=provider)
        created_sessions.append(env["SID"])

    for command in block.commands:
        call = run_command(command, env, tmp_path)
        successes = spec_success_statuses(call.method, call.path)
        where = f"README line {command.line}: {call.method} {call.path}"
        if command.documented_status is not None:
            assert command.documented_status in successes, (
                f"{where}: the README says {command.documented_status}, openapi.json {successes}"
            )
            expected = command.documented_status
        else:
            assert len(successes) == 1, f"{where}: say which of {successes} the example answers (# 202)"
            expected = successes[0]
        assert call.status == expected, f"{where} answered {call.status}, documented {expected}:\n{call.body}"
        if call.status == 204:
            assert call.body == ""
        elif " -o " not in command.text:
            answer = json.loads(call.body)  # every other example prints a JSON document
            if call.method == "POST" and call.path == "/api/sessions":
                created_sessions.append(answer["session_id"])

    for target in re.findall(r" -o (\S+)", block.source):
        assert (tmp_path / target).is_file(), f"{target} was not written"

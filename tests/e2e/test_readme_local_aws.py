"""README.md's boto3 example for the local stack's queue, bus and completion events, run as
written against the test stack (only its AWS endpoint differs: the tests' moto takes a free port)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import boto3

from local.aws import FAKE_AWS
from local.stack import DEV_TENANT, Stack

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_ENDPOINT = "http://127.0.0.1:4566"


def boto3_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    (example,) = [block for block in blocks if "sandbox-gateway-completions-local" in block]
    return example


def test_the_readme_boto3_example_runs_two_executions_and_reads_their_completions(stack: Stack) -> None:
    assert stack.aws_url is not None and stack.completions_queue_url is not None
    assert f'"tenant_id": "{DEV_TENANT}"' in boto3_example()  # make dev's tenant, as the README says
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.aws_url,
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    )
    sqs.purge_queue(QueueUrl=stack.completions_queue_url)  # earlier tests' events

    source = boto3_example().replace(DOCUMENTED_ENDPOINT, stack.aws_url)
    ran = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=120, check=False
    )

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert len(lines) == 2, ran.stdout
    for line in lines:
        detail_type, execution_id, status, href = line.split()
        assert (detail_type, status) == ("ExecutionCompleted", "succeeded")
        assert href == f"/api/executions/{execution_id}"

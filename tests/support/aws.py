"""DynamoDB tables for tests, built from template.yaml's own definition so they cannot drift."""

from __future__ import annotations

from typing import Any

from local.template import sessions_table_definition


def create_sessions_table(dynamodb: Any, name: str) -> Any:
    """Create the sessions table (boto3 resource) as template.yaml defines it."""
    table = dynamodb.create_table(TableName=name, **sessions_table_definition())
    table.wait_until_exists()
    return table

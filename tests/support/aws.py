"""DynamoDB tables for tests, built from template.yaml's own definition so they cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping intrinsic functions (!Ref, !Sub…) as plain values."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)


def sessions_table_definition() -> dict[str, Any]:
    props = load_template()["Resources"]["SessionsTable"]["Properties"]
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
    }


def create_sessions_table(dynamodb: Any, name: str) -> Any:
    """Create the sessions table (boto3 resource) as template.yaml defines it."""
    table = dynamodb.create_table(TableName=name, **sessions_table_definition())
    table.wait_until_exists()
    return table

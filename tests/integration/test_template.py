"""template.yaml: lints clean, translates, and every route reaches the function that serves it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import lint_all
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from local.template import (
    TEMPLATE,
    http_api_routes,
    load_template,
    scheduled_functions,
    sessions_table_definition,
)
from tests.support.handlers import load_handler_module

EXPECTED_ROUTES = {
    "POST /api/sessions": "SessionsFunction",
    "GET /api/sessions": "SessionsFunction",
    "GET /api/sessions/{session_id}": "SessionsFunction",
    "POST /api/sessions/{session_id}/keepalive": "SessionsFunction",
    "DELETE /api/sessions/{session_id}": "SessionsFunction",
    "GET /api/usage": "SessionsFunction",
    "GET /api/environments": "MetaFunction",
    "GET /api/openapi.json": "MetaFunction",
    "GET /api/docs": "MetaFunction",
    "POST /api/e2b/execute": "ExecuteFunction",
    "GET /api/executions/{execution_id}": "ExecuteFunction",
    "GET /api/sessions/{session_id}/executions": "ExecuteFunction",
    "GET /api/callbacks/secret": "ExecuteFunction",
    "POST /api/callbacks/secret": "ExecuteFunction",
    "GET /api/e2b/files/{session_id}": "FilesFunction",
    "GET /api/e2b/files/{session_id}/{file_path+}": "FilesFunction",
    "POST /api/e2b/files": "FilesFunction",
    "DELETE /api/e2b/files/{session_id}/{file_path+}": "FilesFunction",
    # Everything no route matches: 404 route_not_found in the common shape, not API Gateway's own.
    "$default": "MetaFunction",
}


class _NoManagedPolicies:
    """The translator asks for AWS managed policy ARNs; the template uses none."""

    def load(self) -> dict[str, str]:
        return {}


def _packaged() -> dict[str, Any]:
    template = yaml_parse(TEMPLATE.read_text())
    # As `sam package` would: local code folders become S3 locations.
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://artifacts/{resource['Properties'][key].strip('/')}.zip"
    return template


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return transform(_packaged(), {}, _NoManagedPolicies())


def test_template_has_no_cfn_lint_errors() -> None:
    errors = [m for m in lint_all(TEMPLATE.read_text()) if m.rule.id.startswith("E")]
    assert errors == []


def test_every_route_is_declared_for_the_right_function() -> None:
    assert {route.route_key: route.function for route in http_api_routes()} == EXPECTED_ROUTES


def test_translated_routes_integrate_with_their_functions(translated: dict[str, Any]) -> None:
    api = next(r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    # For HttpApi events SAM writes the routes into the API's OpenAPI body.
    found = {}
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, operation in methods.items():
            uri = json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
            key = path if operation.get("isDefaultRoute") else f"{method.upper()} {path}"
            found[key] = next(f for f in set(EXPECTED_ROUTES.values()) if f in uri)
    assert found == EXPECTED_ROUTES


def test_unmatched_requests_reach_a_default_route_for_any_method(translated: dict[str, Any]) -> None:
    api = next(r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    default = api["Properties"]["Body"]["paths"]["$default"]
    assert list(default) == ["x-amazon-apigateway-any-method"]
    assert default["x-amazon-apigateway-any-method"]["isDefaultRoute"] is True
    # CORS preflights stay API Gateway's own answer: the CORS configuration is still on the API.
    cors = api["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert "OPTIONS" in cors["allowMethods"] and cors["allowOrigins"] == "*"


def test_the_default_route_is_the_local_gateways_fallback_only() -> None:
    (default,) = [route for route in http_api_routes() if route.is_default]
    assert (default.route_key, default.function) == ("$default", "MetaFunction")
    assert default.match("GET", "$default") is None and default.match("ANY", "/nope") is None
    assert http_api_routes()[-1] == default


def test_functions_are_least_privilege(translated: dict[str, Any]) -> None:
    roles = {
        name.removesuffix("Role"): r
        for name, r in translated["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
    }
    assert set(roles) == {
        "SessionsFunction",
        "ExecuteFunction",
        "FilesFunction",
        "ReaperFunction",
        "PoolFunction",
        "MetaFunction",
        "AuthorizerFunction",
        "WorkerFunction",
    }
    for name, role in roles.items():
        statements = [
            s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
        ]
        resources = json.dumps([s["Resource"] for s in statements])
        if name == "MetaFunction":  # reads configuration only
            assert statements == []
            continue
        if name == "AuthorizerFunction":  # reads keys (and marks them used); no E2B key
            assert "SessionsTable" in resources and "E2BApiKeySecret" not in resources
            continue
        assert "SessionsTable" in resources and "E2BApiKeySecret" in resources
        assert '"*"' not in resources
        # Only what queues, reports and stores executions touches the queue, the bus and the bucket.
        assert ("ExecutionQueue" in resources) == (name == "ExecuteFunction")
        assert ("EventBus" in resources) == (name in ("ExecuteFunction", "WorkerFunction"))
        assert ("ResultsBucket" in resources) == (name in ("ExecuteFunction", "WorkerFunction"))
        # Sealed sandbox access: sealed where sandboxes are made, opened where they are reached.
        actions = json.dumps([s["Action"] for s in statements if "SandboxAccessKey" in json.dumps(s)])
        assert ("kms:Encrypt" in actions) == (name in ("SessionsFunction", "WorkerFunction", "PoolFunction"))
        assert ("kms:Decrypt" in actions) == (name not in ("ReaperFunction", "PoolFunction"))


def test_the_worker_takes_the_queue_with_partial_batch_failures_and_a_dead_letter_queue(
    translated: dict[str, Any],
) -> None:
    resources = load_template()["Resources"]
    queue = resources["ExecutionQueue"]["Properties"]
    worker = resources["WorkerFunction"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": "ExecutionDeadLetterQueue.Arn"}
    assert queue["VisibilityTimeout"] == worker["Timeout"]  # never redelivered while it still runs
    source = worker["Events"]["Queue"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    mappings = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1
    rule = resources["ExecutionRequestedRule"]["Properties"]
    assert rule["EventPattern"] == {"detail-type": ["ExecutionRequested"]}
    assert [t["Arn"] for t in rule["Targets"]] == [{"GetAtt": "ExecutionQueue.Arn"}]


def test_the_results_bucket_is_private_encrypted_and_expires_what_it_holds() -> None:
    bucket = load_template()["Resources"]["ResultsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    expiring = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert expiring and expiring[0]["Status"] == "Enabled"


def test_table_has_ttl_recovery_and_encryption() -> None:
    table = load_template()["Resources"]["SessionsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "purge_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_functions_answer_before_api_gateway_gives_up() -> None:
    template = load_template()
    assert template["Globals"]["Function"]["Timeout"] < 30
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    assert template["Globals"]["Function"]["Tracing"] == "Active"


@pytest.mark.parametrize("function", ["sessions", "execute", "files", "meta", "reaper", "pool"])
def test_each_handler_module_exposes_lambda_handler(function: str) -> None:
    assert callable(load_handler_module(function).lambda_handler)


def test_the_reaper_and_the_pool_refill_run_every_minute_off_the_api(translated: dict[str, Any]) -> None:
    scheduled = {function.function: function for function in scheduled_functions()}
    assert set(scheduled) == {"ReaperFunction", "PoolFunction"}
    for function in scheduled.values():
        assert function.schedule == "rate(1 minute)"
        assert 30 <= function.timeout_seconds < 60  # done before the next run starts
    rules = [
        r
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(1 minute)"] * 2
    targets = json.dumps([rule["Properties"]["Targets"] for rule in rules])
    assert "ReaperFunction" in targets and "PoolFunction" in targets
    # No route reaches them; the local gateway still builds the API's routes alone.
    assert not set(scheduled) & {route.function for route in http_api_routes()}


def test_the_live_session_index_is_sparse_and_keyed_by_expiry() -> None:
    definition = sessions_table_definition()
    (index,) = [i for i in definition["GlobalSecondaryIndexes"] if i["IndexName"] == "LiveByExpiry"]
    assert index["IndexName"] == "LiveByExpiry"
    assert index["KeySchema"] == [
        {"AttributeName": "live_shard", "KeyType": "HASH"},
        {"AttributeName": "expires_at", "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    assert types["live_shard"] == "S" and types["expires_at"] == "N"


# --- SnapStart: published versions behind the `live` alias, and everything invokes the alias --------
def _of_type(translated: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in translated["Resources"].items() if r["Type"] == kind}


def _alias(function: str) -> dict[str, str]:
    return {"Ref": f"{function}Aliaslive"}


def test_every_function_snapstarts_on_published_versions_behind_the_live_alias(
    translated: dict[str, Any],
) -> None:
    functions = _of_type(translated, "AWS::Lambda::Function")
    assert len(functions) == 8
    aliases = _of_type(translated, "AWS::Lambda::Alias")
    versions = _of_type(translated, "AWS::Lambda::Version")
    for name, function in functions.items():
        props = function["Properties"]
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}, name
        # What SnapStart cannot be combined with.
        assert "FileSystemConfigs" not in props and props.get("EphemeralStorage", {}).get("Size", 512) <= 512
        alias = aliases[f"{name}Aliaslive"]["Properties"]
        assert (alias["Name"], alias["FunctionName"]) == ("live", {"Ref": name})
        (version,) = [v for v, r in versions.items() if r["Properties"]["FunctionName"] == {"Ref": name}]
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version, "Version"]}
        assert "ProvisionedConcurrencyConfig" not in alias
    for resource in load_template()["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # Else a change of memory, environment or layer alone would leave the alias on the old version.
            assert resource["Properties"]["AutoPublishAliasAllProperties"] is True


def test_api_routes_and_the_authorizer_invoke_the_alias(translated: dict[str, Any]) -> None:
    api = next(iter(_of_type(translated, "AWS::ApiGatewayV2::Api").values()))["Properties"]["Body"]
    for path, methods in api["paths"].items():
        for method, operation in methods.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            function = EXPECTED_ROUTES[
                path if operation.get("isDefaultRoute") else f"{method.upper()} {path}"
            ]
            assert f"${{{function}Aliaslive}}" in uri
    authorizer = api["components"]["securitySchemes"]["ApiKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerUri"]["Fn::Sub"][1] == {"__FunctionArn__": _alias("AuthorizerFunction")}
    permissions = [
        p["Properties"]
        for p in _of_type(translated, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert {json.dumps(p["FunctionName"]) for p in permissions} == {
        json.dumps(_alias(f)) for f in {*EXPECTED_ROUTES.values(), "AuthorizerFunction"}
    }
    # API Gateway may invoke the authorizer's alias (and nothing else of it).
    assert any("/authorizers/*" in json.dumps(p["SourceArn"]) for p in permissions)


def test_the_queue_and_the_schedule_invoke_the_alias(translated: dict[str, Any]) -> None:
    (mapping,) = _of_type(translated, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionName"] == _alias("WorkerFunction")
    schedules = [
        r
        for r in _of_type(translated, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    targets = sorted(json.dumps(t["Arn"]) for r in schedules for t in r["Properties"]["Targets"])
    assert targets == sorted(json.dumps(_alias(name)) for name in ("ReaperFunction", "PoolFunction"))
    permissions = [
        p["Properties"]
        for p in _of_type(translated, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert sorted(json.dumps(p["FunctionName"]) for p in permissions) == targets


def test_a_new_layer_publishes_a_new_version_of_every_function(translated: dict[str, Any]) -> None:
    # The layer holds the whole service: without a new version the aliases would keep the old one.
    template = _packaged()
    template["Resources"]["SharedLayer"]["Properties"]["ContentUri"] = "s3://artifacts/another-layer.zip"
    changed = transform(template, {}, _NoManagedPolicies())
    before = set(_of_type(translated, "AWS::Lambda::Version"))
    after = set(_of_type(changed, "AWS::Lambda::Version"))
    assert len(before) == len(after) == 8
    assert before.isdisjoint(after)

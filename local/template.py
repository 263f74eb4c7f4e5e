"""Reads template.yaml: the HTTP API routes, the functions behind them, the API's authorizers, the
scheduled functions, the sessions table, and the queues, event bus, rules, buckets and SQS event
sources of async executions.

The local gateway and the tests take all of this from the template itself, so they cannot
drift from what `sam deploy` creates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DEFAULT_ROUTE = "$default"


class _CfnLoader(yaml.SafeLoader):
    """CloudFormation YAML: intrinsic functions (!Ref, !Sub, !If…) are kept as plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway syntax: /api/sessions/{session_id}, /files/{file_path+}
    function: str  # logical id
    code_dir: Path
    handler: str  # module.function
    timeout_seconds: int
    # The authorizer that checks this route's requests (a name in `http_api_authorizers`), None
    # for a public route (`Auth: {Authorizer: NONE}`).
    authorizer: str | None = None

    @property
    def is_default(self) -> bool:
        """API Gateway's `$default` route: it serves every request that no other route matches."""
        return self.path == DEFAULT_ROUTE

    @property
    def route_key(self) -> str:
        # API Gateway sends "$default" alone as the route key, without a method.
        return DEFAULT_ROUTE if self.is_default else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves `method path`; the `$default` route matches nothing
        here, it is only the fallback (see `local.gateway.find_route`)."""
        if self.is_default or self.method not in ("ANY", method):
            return None
        found = _route_regex(self.path).fullmatch(path)
        return found.groupdict() if found else None


def _route_regex(path: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"  # greedy: may span slashes
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def _parameter_value(template: dict[str, Any], value: Any) -> Any:
    """A literal, or a `!Ref` to a parameter: its default, as `sam deploy` uses without overrides."""
    if isinstance(value, dict) and "Ref" in value:
        return template.get("Parameters", {})[value["Ref"]].get("Default")
    return value


def _function_timeout(template: dict[str, Any], props: dict[str, Any]) -> int:
    """A function's Timeout (a literal or a parameter's default), else the Globals' one."""
    global_timeout = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return int(_parameter_value(template, props.get("Timeout", global_timeout)))


def _function_events(
    template: dict[str, Any], event_type: str
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(function logical id, its Properties, the event's Properties) of each event of that type."""
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == event_type:
                yield name, props, event["Properties"]


def http_api_routes(template: dict[str, Any] | None = None) -> list[Route]:
    template = template or load_template()
    default_authorizer = _http_api_auth(template).get("DefaultAuthorizer")
    routes = []
    for name, props, event in _function_events(template, "HttpApi"):
        # SAM: a route's own `Auth.Authorizer` wins over the API's default; NONE makes it public.
        authorizer = (event.get("Auth") or {}).get("Authorizer", default_authorizer)
        routes.append(
            Route(
                method=event["Method"].upper(),
                path=event["Path"],
                function=name,
                code_dir=ROOT / props["CodeUri"],
                handler=props["Handler"],
                timeout_seconds=_function_timeout(template, props),
                authorizer=None if authorizer in (None, "NONE") else str(authorizer),
            )
        )
    # Like API Gateway: literal routes before parameterised ones, greedy ones last, a method
    # before ANY, and $default only when nothing else matches.
    return sorted(
        routes,
        key=lambda r: (r.is_default, r.path.count("+}"), r.path.count("{"), -len(r.path), r.method == "ANY"),
    )


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer of the HTTP API (`Auth.Authorizers`), with parameters at their defaults."""

    name: str
    function: str  # logical id of the function FunctionArn names (`!Ref <function>.Alias`)
    code_dir: Path
    handler: str
    timeout_seconds: int
    identity_headers: tuple[str, ...]  # lower-case; a request without one of them is 401
    cache_seconds: int  # ReauthorizeEvery: answers are cached by identity for this long (0: never)
    simple_responses: bool  # EnableSimpleResponses: {"isAuthorized": bool, "context": {...}}
    payload_format_version: str

    def as_route(self) -> Route:
        """The local gateway's worker pools invoke functions by Route."""
        return Route("AUTHORIZER", "", self.function, self.code_dir, self.handler, self.timeout_seconds)


def _http_api(template: dict[str, Any]) -> dict[str, Any]:
    api = next(
        (r for r in template["Resources"].values() if r.get("Type") == "AWS::Serverless::HttpApi"), None
    )
    return (api or {}).get("Properties") or {}


def _http_api_auth(template: dict[str, Any]) -> dict[str, Any]:
    return _http_api(template).get("Auth") or {}


def _authorizer_function(name: str, arn: Any) -> str:
    """The logical id in `!Ref <Function>.Alias` (SnapStart's published alias) or `!GetAtt <Function>.Arn`;
    locally both are the function itself."""
    if isinstance(arn, dict) and isinstance(arn.get("Ref"), str) and arn["Ref"].endswith(".Alias"):
        return str(arn["Ref"]).removesuffix(".Alias").strip()
    if isinstance(arn, dict) and "GetAtt" in arn:
        get_att = arn["GetAtt"]
        return str(get_att.split(".")[0] if isinstance(get_att, str) else get_att[0]).strip()
    raise ValueError(
        f"authorizer {name}: FunctionArn must be !Ref <Function>.Alias or !GetAtt <Function>.Arn locally"
    )


def http_api_authorizers(template: dict[str, Any] | None = None) -> dict[str, Authorizer]:
    """The HTTP API's Lambda authorizers by name (JWT authorizers are not run locally)."""
    template = template or load_template()
    found = {}
    for name, config in (_http_api_auth(template).get("Authorizers") or {}).items():
        function = _authorizer_function(name, config.get("FunctionArn"))
        props = template["Resources"][function]["Properties"]
        identity = config.get("Identity") or {}
        cache_seconds = _parameter_value(template, identity.get("ReauthorizeEvery", 300))
        found[name] = Authorizer(
            name=name,
            function=function,
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            timeout_seconds=_function_timeout(template, props),
            identity_headers=tuple(str(h).lower() for h in identity.get("Headers") or ()),
            cache_seconds=int(cache_seconds),
            simple_responses=bool(config.get("EnableSimpleResponses", False)),
            payload_format_version=str(config.get("AuthorizerPayloadFormatVersion", "2.0")),
        )
    return found


@dataclass(frozen=True)
class CorsConfiguration:
    """The HTTP API's CorsConfiguration, with parameters at their defaults.

    With one, API Gateway answers CORS preflights itself (no route, no function) and adds the
    allow-origin and expose-headers headers to every response to a request with an allowed Origin,
    ignoring any CORS headers the function returns.
    """

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int | None
    allow_credentials: bool

    def allows_origin(self, origin: str) -> bool:
        for allowed in self.allow_origins:
            if allowed == "*" or allowed == origin:
                return True
            if allowed.endswith("://*") and origin.startswith(allowed[:-1]):  # https://*, http://*
                return True
        return False


def cors_configuration(template: dict[str, Any] | None = None) -> CorsConfiguration | None:
    template = template or load_template()
    config = _http_api(template).get("CorsConfiguration")
    if not config:
        return None
    parameters = template.get("Parameters", {})

    def values(key: str) -> tuple[str, ...]:
        value = config.get(key) or []
        if isinstance(value, dict) and "Ref" in value:  # a parameter: its default, as `sam deploy` uses
            value = str(parameters[value["Ref"]].get("Default", "")).split(",")
        if isinstance(value, str):
            value = [value]
        return tuple(str(v).strip() for v in value if str(v).strip())

    max_age = config.get("MaxAge")
    return CorsConfiguration(
        allow_origins=values("AllowOrigins"),
        allow_methods=values("AllowMethods"),
        allow_headers=values("AllowHeaders"),
        expose_headers=values("ExposeHeaders"),
        max_age=int(max_age) if max_age is not None else None,
        allow_credentials=bool(config.get("AllowCredentials", False)),
    )


def function_environment(template: dict[str, Any] | None = None) -> dict[str, str]:
    """The Globals environment variables whose values are literals (refs are the stack's job)."""
    template = template or load_template()
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(value) for name, value in variables.items() if isinstance(value, str | int)}


def own_environment(function: str, template: dict[str, Any] | None = None) -> dict[str, str]:
    """A function's own environment variables whose values are literals; deployed, they win over
    the Globals' (the worker's larger output limits, for instance)."""
    template = template or load_template()
    resource = template["Resources"].get(function) or {}
    variables = (resource.get("Properties") or {}).get("Environment", {}).get("Variables", {})
    return {name: str(value) for name, value in variables.items() if isinstance(value, str | int)}


def sessions_table_definition(template: dict[str, Any] | None = None) -> dict[str, Any]:
    props = (template or load_template())["Resources"]["SessionsTable"]["Properties"]
    keys = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")
    return {key: props[key] for key in keys if key in props}


@dataclass(frozen=True)
class ScheduledFunction:
    """A function with a Schedule event (e.g. the reaper): the local stack runs it itself."""

    function: str  # logical id
    code_dir: Path
    handler: str
    timeout_seconds: int
    schedule: str  # rate(1 minute), cron(...)

    def as_route(self) -> Route:
        """The local gateway's worker pools invoke functions by Route."""
        return Route("SCHEDULE", "", self.function, self.code_dir, self.handler, self.timeout_seconds)


def scheduled_functions(template: dict[str, Any] | None = None) -> list[ScheduledFunction]:
    template = template or load_template()
    return [
        ScheduledFunction(
            function=name,
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            timeout_seconds=_function_timeout(template, props),
            schedule=str(event["Schedule"]),
        )
        for name, props, event in _function_events(template, "Schedule")
    ]


# --- queues, the event bus, buckets and SQS event sources (decision 0007) ----------------------
def _logical_id(value: Any) -> str:
    """The resource a `!Ref X` or `!GetAtt X.Attribute` names."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "GetAtt" in value:
        get_att = value["GetAtt"]
        return (get_att.split(".")[0] if isinstance(get_att, str) else str(get_att[0])).strip()
    raise ValueError(f"expected !Ref or !GetAtt of a resource, got {value!r}")


def _optional_int(template: dict[str, Any], value: Any) -> int | None:
    resolved = _parameter_value(template, value)
    return None if resolved is None else int(resolved)


def parameter_default(name: str, template: dict[str, Any] | None = None) -> Any:
    """A template parameter's default, as `sam deploy` uses it without overrides."""
    return _parameter_value(template or load_template(), {"Ref": name})


@dataclass(frozen=True)
class RedrivePolicy:
    dead_letter_queue: str  # logical id
    max_receive_count: int


@dataclass(frozen=True)
class QueueDefinition:
    """An AWS::SQS::Queue, with parameters at their defaults (None: SQS's own default)."""

    logical_id: str
    visibility_timeout_seconds: int | None
    message_retention_seconds: int | None
    redrive: RedrivePolicy | None
    managed_sse: bool = False  # SqsManagedSseEnabled


def queue_definitions(template: dict[str, Any] | None = None) -> list[QueueDefinition]:
    """Every queue, dead-letter queues before the queues that send to them (creation order)."""
    template = template or load_template()
    found = []
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::SQS::Queue":
            continue
        props = resource.get("Properties") or {}
        redrive = props.get("RedrivePolicy")
        found.append(
            QueueDefinition(
                logical_id=name,
                visibility_timeout_seconds=_optional_int(template, props.get("VisibilityTimeout")),
                message_retention_seconds=_optional_int(template, props.get("MessageRetentionPeriod")),
                redrive=RedrivePolicy(
                    dead_letter_queue=_logical_id(redrive["deadLetterTargetArn"]),
                    max_receive_count=int(_parameter_value(template, redrive["maxReceiveCount"])),
                )
                if redrive
                else None,
                managed_sse=bool(_parameter_value(template, props.get("SqsManagedSseEnabled", False))),
            )
        )
    # A dead-letter queue of a dead-letter queue is not used here: one level is enough to order.
    return sorted(found, key=lambda queue: queue.redrive is not None)


def _substitute(template: dict[str, Any], value: Any, overrides: dict[str, str]) -> str:
    """A literal or a `!Sub` of parameters (`overrides` first, else their defaults)."""
    if isinstance(value, dict) and "Sub" in value:
        pattern = value["Sub"]
        if not isinstance(pattern, str):
            raise ValueError(f"!Sub with variables is not supported locally: {value!r}")
        parameters = template.get("Parameters", {})

        def parameter(found: re.Match[str]) -> str:
            name = found.group(1)
            if name in overrides:
                return overrides[name]
            if name not in parameters:
                raise ValueError(f"!Sub {pattern!r}: ${{{name}}} is not a parameter")
            return str(parameters[name].get("Default", ""))

        return re.sub(r"\$\{([^}!]+)\}", parameter, pattern)
    return str(_parameter_value(template, value))


@dataclass(frozen=True)
class EventBusDefinition:
    logical_id: str
    name: str  # with the parameters the caller gave (e.g. Stage=local), else their defaults


@dataclass(frozen=True)
class EventRuleDefinition:
    logical_id: str
    event_bus: str | None  # logical id of the bus; None: the account's default bus
    event_pattern: dict[str, Any]
    targets: tuple[tuple[str, str], ...]  # (target Id, logical id of the target resource)


def event_bus_and_rules(
    template: dict[str, Any] | None = None, parameters: dict[str, str] | None = None
) -> tuple[list[EventBusDefinition], list[EventRuleDefinition]]:
    """The event buses (names resolved with `parameters`, e.g. {"Stage": "local"}) and the rules."""
    template = template or load_template()
    buses, rules = [], []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Events::EventBus":
            buses.append(EventBusDefinition(name, _substitute(template, props["Name"], parameters or {})))
        elif resource.get("Type") == "AWS::Events::Rule":
            if "EventPattern" not in props:
                raise ValueError(f"rule {name}: only EventPattern rules are run locally")
            bus = props.get("EventBusName")
            rules.append(
                EventRuleDefinition(
                    logical_id=name,
                    event_bus=None if bus is None else _logical_id(bus),
                    event_pattern=dict(props["EventPattern"]),
                    targets=tuple((str(t["Id"]), _logical_id(t["Arn"])) for t in props.get("Targets") or ()),
                )
            )
    return buses, rules


@dataclass(frozen=True)
class BucketDefinition:
    """An AWS::S3::Bucket's properties as CloudFormation spells them (the local stack translates)."""

    logical_id: str
    properties: dict[str, Any]


def bucket_definitions(template: dict[str, Any] | None = None) -> list[BucketDefinition]:
    template = template or load_template()
    return [
        BucketDefinition(name, dict(resource.get("Properties") or {}))
        for name, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::S3::Bucket"
    ]


@dataclass(frozen=True)
class SqsEventSource:
    """A function's SQS event (an event source mapping): the local stack polls the queue for it."""

    function: str  # logical id
    code_dir: Path
    handler: str
    timeout_seconds: int
    queue: str  # logical id
    batch_size: int
    function_response_types: tuple[str, ...]

    @property
    def reports_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types

    def as_route(self) -> Route:
        """The local gateway's worker pools invoke functions by Route."""
        return Route("SQS", "", self.function, self.code_dir, self.handler, self.timeout_seconds)


def sqs_event_sources(template: dict[str, Any] | None = None) -> list[SqsEventSource]:
    template = template or load_template()
    return [
        SqsEventSource(
            function=name,
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            timeout_seconds=_function_timeout(template, props),
            queue=_logical_id(source["Queue"]),
            batch_size=int(_parameter_value(template, source.get("BatchSize", 10))),  # SAM's default
            function_response_types=tuple(source.get("FunctionResponseTypes") or ()),
        )
        for name, props, source in _function_events(template, "SQS")
    ]


def environment_references(template: dict[str, Any] | None = None) -> dict[str, str]:
    """Globals environment variables that are `!Ref <Resource>`, by name: the logical id they name.

    Deployed, a queue's Ref is its URL, a bus's its name, a bucket's and a table's their names; the
    local stack gives each variable its local resource's value."""
    template = template or load_template()
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    resources = template["Resources"]
    return {
        name: value["Ref"]
        for name, value in variables.items()
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in resources
    }

"""Authorizer function: API Gateway asks it whether a request's API key is valid, and for whom.

The decision is sandbox_gateway/auth.py; keys are in the sessions table (adapters/tenants.py)."""

import time

from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import snapstart, wiring
from sandbox_gateway.auth import authorize
from sandbox_gateway.observability import logger

snapstart.register()


@logger.inject_lambda_context(clear_state=True)  # logs never carry the event: it holds the key
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return authorize(event, wiring.tenant_store(), int(time.time()))

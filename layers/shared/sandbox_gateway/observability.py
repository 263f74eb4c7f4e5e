"""Powertools logger, tracer and metrics: one instance each, shared by handlers and services."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

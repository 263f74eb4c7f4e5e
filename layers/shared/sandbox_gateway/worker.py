"""The worker: runs queued executions from the execution queue (SQS event source mapping).

Each record is one of: the API's `{"execution_id", "tenant_id"}` for an execution it queued, or a
direct producer's ExecutionRequested (a raw SQS message or an EventBridge event the bus rule
forwarded). Powertools' batch processor reports the records that raised as failed items, so a
bad message is redelivered alone and, after the queue's maxReceiveCount, lands in the DLQ; the
other records of its batch are done.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sandbox_gateway import wiring
from sandbox_gateway.models.errors import InvalidMessage
from sandbox_gateway.models.messages import QueuedExecution, parse_record
from sandbox_gateway.observability import logger, metrics, tracer

# A batch whose every record failed is reported item by item too, not raised: raising would
# return the whole batch to the queue with no item marked, the same in effect but unlogged.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_record(record: SQSRecord) -> str | None:
    logger.append_keys(message_id=record.message_id)
    try:
        work = parse_record(record.body, record.message_id)
    except InvalidMessage as refused:
        # Fails this item only; the DLQ keeps it for inspection once its receives run out.
        logger.warning("message refused", extra={"reason": str(refused)})
        metrics.add_metric(name="MessagesRefused", unit=MetricUnit.Count, value=1)
        raise
    orchestrator = wiring.orchestrator()
    if isinstance(work, QueuedExecution):
        finished = orchestrator.run_queued(work.tenant_id, work.execution_id)
        return finished.execution_id if finished else None
    return orchestrator.accept_message(work.message, work.source, work.dedupe_key)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )

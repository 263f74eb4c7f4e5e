"""Rich results as the code interpreter streams them, turned into the API's JSON payload."""

from __future__ import annotations

import json

from sandbox_gateway.adapters.code_interpreter import execution_from_ndjson, outcome_from_execution

# A line chart as E2B's `e2b/chart` formatter emits it (the shape e2b_charts produces).
LINE_CHART = {
    "type": "line",
    "title": "growth",
    "x_label": "x",
    "y_label": "y",
    "x_unit": None,
    "y_unit": None,
    "x_ticks": [0, 1, 2],
    "x_tick_labels": ["0", "1", "2"],
    "x_scale": "linear",
    "y_ticks": [0, 2, 4],
    "y_tick_labels": ["0", "2", "4"],
    "y_scale": "linear",
    "elements": [{"label": "a", "points": [[0, 0], [1, 2], [2, 4]]}],
}


def test_a_chart_result_reaches_the_payload_as_the_server_sent_it() -> None:
    lines = [
        json.dumps({"type": "result", "png": "iVBORw0KGgo=", "text": "<Figure>", "chart": LINE_CHART}),
        json.dumps({"type": "end_of_execution"}),
    ]
    outcome = outcome_from_execution(execution_from_ndjson(lines), elapsed_ms=1.0)

    (payload,) = [result.to_payload() for result in outcome.results]
    assert payload["formats"] == ["chart", "png", "text"]
    assert payload["chart"] == LINE_CHART
    assert json.loads(json.dumps(payload))["chart"]["elements"][0]["points"] == [[0, 0], [1, 2], [2, 4]]


def test_a_dataframe_result_keeps_its_html_and_data() -> None:
    data = {"a": [1, 2], "b": ["x", "y"]}
    lines = [
        json.dumps(
            {
                "type": "result",
                "text": "   a  b",
                "html": "<table></table>",
                "data": data,
                "is_main_result": True,
            }
        )
    ]
    outcome = outcome_from_execution(execution_from_ndjson(lines), elapsed_ms=1.0)

    (payload,) = [result.to_payload() for result in outcome.results]
    assert payload["is_main_result"] is True
    assert payload["html"] == "<table></table>"
    assert payload["data"] == data

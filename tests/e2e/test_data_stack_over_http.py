"""The sandbox runtime through the gateway: POST /api/e2b/execute carries a matplotlib chart (PNG
and E2B's structured chart) and a DataFrame's HTML; a file written through the API is `user`'s."""

from __future__ import annotations

import base64

from tests.e2e.conftest import Client


def test_execute_returns_a_chart_and_a_dataframe(client: Client) -> None:
    session_id = client.create_session()
    plotted = client.execute(
        session_id,
        "import matplotlib.pyplot as plt\nplt.scatter([1, 2, 3], [2, 4, 8])\nplt.title('growth')\nplt.show()",
    ).json()
    assert plotted["status"] == "ok", plotted
    (figure,) = plotted["results"]
    assert {"png", "chart"} <= set(figure["formats"])
    assert base64.b64decode(figure["png"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert figure["chart"]["type"] == "scatter" and figure["chart"]["title"] == "growth"
    assert figure["chart"]["elements"][0]["points"] == [[1.0, 2.0], [2.0, 4.0], [3.0, 8.0]]

    code = "import pandas as pd\npd.DataFrame({'n': [1, 2], 'sq': [1, 4]})"
    table = client.execute(session_id, code).json()
    (frame,) = table["results"]
    assert frame["is_main_result"] is True
    assert "<table" in frame["html"] and "<th>sq</th>" in frame["html"]
    assert frame["data"] == {"n": [1, 2], "sq": [1, 4]}


def test_a_file_written_through_the_api_belongs_to_user(client: Client) -> None:
    session_id = client.create_session()
    body = {"session_id": session_id, "file_path": "owned.txt", "content": "mine"}
    assert client.request("POST", "/api/e2b/files", json=body).status_code == 201
    code = "import os, pwd\nst = os.stat('owned.txt')\nprint(pwd.getpwuid(st.st_uid).pw_name, os.getuid())"
    assert client.execute(session_id, code).json()["stdout"] == "user 1000\n"

"""IPython extension giving results the representations E2B's code interpreter adds:
``e2b/chart`` (a matplotlib Figure as structured data, by E2B's own ``e2b_charts``),
``e2b/data`` (a pandas DataFrame's columns) and an orjson-based ``application/json`` (lists and
dicts holding numpy values). The host maps them to a result's ``chart``, ``data`` and ``json``.

Loaded by the kernel (``--IPKernelApp.extensions=e2b_display``), not run in the user's
namespace: it leaves no names there. Formatters run for every displayed object, so each one
first checks ``sys.modules``: a DataFrame or Figure can only exist once its library is imported,
and ``1 + 1`` must not pay for importing pandas or matplotlib.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.formatters import BaseFormatter, JSONFormatter
from traitlets import ObjectName, Unicode


class DataFrameFormatter(BaseFormatter):
    """``e2b/data``: a DataFrame as {column: [values]}, timestamps in ISO 8601."""

    format_type = Unicode("e2b/data")
    print_method = ObjectName("_repr_e2b_data_")
    _return_type = (dict, str)

    def __call__(self, obj: Any) -> Any:
        pandas = sys.modules.get("pandas")
        if pandas is None or not isinstance(obj, pandas.DataFrame):
            return super().__call__(obj)
        columns = obj.to_dict(orient="list")
        return {
            name: [value.isoformat() if isinstance(value, pandas.Timestamp) else value for value in values]
            for name, values in columns.items()
        }


class ChartFormatter(BaseFormatter):
    """``e2b/chart``: a matplotlib Figure as E2B's chart dict (empty if it cannot be read)."""

    format_type = Unicode("e2b/chart")
    print_method = ObjectName("_repr_e2b_chart_")
    _return_type = (dict, str)

    def __call__(self, obj: Any) -> Any:
        if "matplotlib" not in sys.modules:
            return super().__call__(obj)
        from matplotlib.figure import Figure  # noqa: PLC0415 - only once matplotlib is in use

        if not isinstance(obj, Figure):
            return super().__call__(obj)
        from e2b_charts import chart_figure_to_dict  # noqa: PLC0415 - ditto

        try:
            return chart_figure_to_dict(obj)
        except Exception:
            return {}


class OrjsonFormatter(JSONFormatter):
    """``application/json`` for lists and dicts through orjson, which knows numpy values and
    non-string keys; anything else as IPython would."""

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, (list, dict)):
            import orjson  # noqa: PLC0415 - only for lists and dicts

            try:
                options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
                return orjson.loads(orjson.dumps(obj, option=options)), {"expanded": True}
            except TypeError:
                pass
        return super().__call__(obj)


def load_ipython_extension(ipython: Any) -> None:
    display = ipython.display_formatter
    display.formatters["e2b/data"] = DataFrameFormatter(parent=display)
    display.formatters["e2b/chart"] = ChartFormatter(parent=display)
    display.formatters["application/json"] = OrjsonFormatter(parent=display)

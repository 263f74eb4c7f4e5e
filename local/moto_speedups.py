"""Work moto repeats on every request although its answer never changes, done once, and a sort
whose order nothing uses, skipped.

Profiling the local stack's moto server under `make bench-load` found a third of its time per
request in three such answers:
- which backend serves a request's host: moto lists its own package directory and stats every
  entry in it, twice per request (`list_of_moto_modules`);
- a response class's method names, found with `inspect` per request (`method_names_from_class`);
- an EventBridge target's input template: eight JSONPath expressions compiled per target of every
  PutEvents (jsonpath_ng's `parse` builds a new PLY parser each time): about 25 ms per completion
  event, the largest single cost of an execute on the local stack.

Each is memoised here, in the moto server's process only. The answers are moto's own: a listing
of an installed package, a class's methods, and compiled expressions that `find` only reads.

And every DynamoDB Query began by sorting every item of the table (`Table.all_items`), so a pool
claim or a session listing slowed as `make dev`'s table filled with execution records. The query
then sorts what matched by its own keys with the table's keys last, a total order, so the first
sort decided nothing: queries here read the items as stored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jsonpath_ng.ext
import moto.backends
import moto.core.responses
from moto.dynamodb.models.table import Item, Table

JSONPATH_CACHE_SIZE = 256  # distinct expressions; the stack's rules use EventBridge's eight


def install() -> None:
    if getattr(moto.backends.list_of_moto_modules, "_memoised", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    list_of_moto_modules._memoised = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = list_of_moto_modules
    # responses.py imported the function by name; the class is its only argument.
    moto.core.responses.method_names_from_class = functools.cache(moto.core.responses.method_names_from_class)
    # moto imports `parse` from jsonpath_ng.ext inside the function that uses it, at each call.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=JSONPATH_CACHE_SIZE)(jsonpath_ng.ext.parse)
    Table.query = without_presort(Table.query)


def without_presort(query: Callable[..., Any]) -> Callable[..., Any]:
    """`query` (moto's Table.query) reading the table's items unsorted (one request at a time here:
    nothing else runs while the table's `all_items` is shadowed)."""

    @functools.wraps(query)
    def unsorted_query(table: Table, *args: Any, **kwargs: Any) -> Any:
        table.all_items = functools.partial(stored_items, table)  # type: ignore[method-assign]
        try:
            return query(table, *args, **kwargs)
        finally:
            del table.all_items

    return unsorted_query


def stored_items(table: Table) -> list[Item]:
    if table.range_key_attr:
        return [item for partition in table.items.values() for item in partition.values()]
    return list(table.items.values())

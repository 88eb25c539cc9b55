"""What the OpenAPI document says beyond the schemas: the recursive JSON value component and
the links that take a client (or a stateful fuzzer) from one answer to the next call.

Links follow the executor's path — submit → lease → start → heartbeat → complete / fail — and
an operator's — suspend → resume, fail → retry, complete / cancel → rerun — so a generated
client, or schemathesis's stateful phase, reaches every verb with a run it may act on.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from .schemas import JSON_VALUE_PLACEHOLDER, JSON_VALUE_REF, JSON_VALUE_SCHEMA

RUN_ID = "$response.body#/id"
# ninja's openapi_extra would replace a whole response object, so links travel under this key
# and are moved into their response when the document is built.
LINKS_KEY = "x-runboard-links"


def links(status: int, run_id: str = RUN_ID, **targets: str | dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for an operation whose `status` answer links to other operations.

    Each keyword is an operationId; its value a description, or a full link object (for links
    that carry a request body instead of the run id).
    """
    answer: dict[str, Any] = {}
    for operation_id, link in targets.items():
        if isinstance(link, str):
            link = {"parameters": {"run_id": run_id}, "description": link}
        answer[operation_id] = {"operationId": operation_id, **link}
    return {LINKS_KEY: {status: answer}}


class RunboardAPI(NinjaAPI):
    """NinjaAPI whose document also holds the `JsonValue` component the schemas refer to."""

    def get_openapi_schema(self, *, path_prefix: str | None = None,
                           path_params: dict[str, Any] | None = None) -> Any:
        schema = _with_json_value_refs(
            super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params))
        for item in schema["paths"].values():
            for operation in item.values():
                for status, answer in operation.pop(LINKS_KEY, {}).items():
                    operation["responses"][status]["links"] = answer  # ninja keys by int
        schema.setdefault("components", {}).setdefault("schemas", {})["JsonValue"] = (
            JSON_VALUE_SCHEMA)
        return schema


def _with_json_value_refs(node: Any) -> Any:
    """The document with every JSON-value placeholder replaced by the component reference
    (keeping a field's description, title and default beside it)."""
    if isinstance(node, dict):
        if JSON_VALUE_PLACEHOLDER.items() <= node.items():
            rest = {key: value for key, value in node.items() if key not in JSON_VALUE_PLACEHOLDER}
            return {**rest, **JSON_VALUE_REF}
        for key, value in node.items():
            node[key] = _with_json_value_refs(value)
    elif isinstance(node, list):
        node[:] = [_with_json_value_refs(item) for item in node]
    return node

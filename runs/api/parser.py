"""The JSON body parser: strict JSON, and only values every database backend can store."""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from .errors import UnacceptableJSON

MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise UnacceptableJSON(f"{name} is not JSON", field="body")


def check_storable(value: Any, path: tuple[str, ...] = ()) -> None:
    """Refuse NUL characters, lone surrogates, non-finite numbers and very deep nesting: the
    database would turn each into a server error long after the request was accepted."""
    field = ".".join(path) or "body"
    if len(path) > MAX_DEPTH:
        raise UnacceptableJSON(f"nested deeper than {MAX_DEPTH} levels", field=field)
    if isinstance(value, str):
        if "\x00" in value:
            raise UnacceptableJSON("strings must not contain NUL characters", field=field)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnacceptableJSON("strings must be valid Unicode (no lone surrogates)",
                                   field=field) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise UnacceptableJSON("numbers must be finite", field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, path)
            check_storable(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, (*path, str(index)))


class StrictJSONParser(Parser):
    """ninja's parser, minus what `json.loads` accepts but no database stores."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = json.loads(request.body, parse_constant=_refuse_constant)
        check_storable(data)
        return data

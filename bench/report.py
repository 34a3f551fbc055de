"""Output shared by the benchmarks: one JSON object (``--json``) or an aligned key/value listing."""

from __future__ import annotations

import json


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result)) + 2
    for k, v in result.items():
        print(f"{k:>{width}}  {v}")

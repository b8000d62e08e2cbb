"""The ``Warning`` header of ``fieldValidation=Warn`` for field names no header can carry as is.

Found by the schemathesis run (``tests/e2e/test_openapi_fuzz.py``): an unknown field whose name
is outside latin-1 made Starlette's header encoding raise (500 UnicodeEncodeError), and one with
a control character is refused by uvicorn's header check.  kube-apiserver writes the warning
text as UTF-8 inside the quoted string; control characters cannot be in a header, and go out as
spaces (as Go's server does with line breaks).  Both go through real uvicorn here.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.support.api_harness import ApiHarness

CM = "/api/v1/namespaces/default/configmaps"


async def _served(harness: ApiHarness) -> httpx.AsyncClient:
    client = await harness.client()
    return httpx.AsyncClient(base_url=client.server_url, headers={"Authorization": f"Bearer {harness.token}"})


@pytest.mark.parametrize("field", ["gr\u00fc\u00dfe-\U00067a97-\u0627\u0644", "tab\there-bell\x07-nl\nend"])
async def test_warning_header_carries_any_unknown_field_name(harness: ApiHarness, field: str) -> None:
    """Issue 8, the schemathesis run: an unknown field of any name is a warning, not a 500."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, field: 1}
    async with await _served(harness) as http:
        response = await http.post(f"{CM}?fieldValidation=Warn", content=orjson.dumps(body),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 201, response.text
        raw = dict(response.headers.raw)[b"warning"]
        expected = field.replace("\n", " ").replace("\x07", " ")
        assert raw.decode("utf-8") == f'299 - "unknown field \\"{expected}\\""'
        patched = await http.patch(f"{CM}/w?fieldValidation=Warn", content=orjson.dumps({field: 2}),
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        assert expected in dict(patched.headers.raw)[b"warning"].decode("utf-8")

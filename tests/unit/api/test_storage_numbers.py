"""Numbers JSON cannot hold: a 4xx naming the field, not a 500 from the encoder.

Found by the schemathesis run (``tests/e2e/test_openapi_fuzz.py``): YAML bodies and JSON
patches parsed integers of any size, the schema check only asked "integer", and orjson refused
to store the object (500 ``TypeError: Integer exceeds 64-bit range``).  kube-apiserver's decoder
refuses such a number with 400 BadRequest; here the bounded decoder reads it as a float and the
schema refuses it (422 naming the field), and storage refuses any left (400).
"""

from __future__ import annotations

import orjson

from tests.support.api_harness import ApiHarness

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
HUGE = 99999999999999999999999
DEPLOYMENT = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: d}}
spec:
  replicas: {HUGE}
  selector: {{matchLabels: {{a: b}}}}
  template: {{metadata: {{labels: {{a: b}}}}, spec: {{containers: [{{name: c, image: i}}]}}}}
"""


async def test_huge_number_in_yaml_create_is_bad_request(harness: ApiHarness) -> None:
    """Issue 8, the schemathesis run: a number beyond 64 bits in a YAML body is a 400 naming it."""
    before = await harness.revision()
    response = await harness.http.post(DEPLOYMENTS, content=DEPLOYMENT,
                                       headers={"Content-Type": "application/yaml"})
    # The bounded decoder reads a number beyond 64 bits as a float, which the schema refuses
    # (422 naming the field); the store's own 64-bit check (a 400) is the backstop.
    assert response.status_code == 422, response.text
    status = response.json()
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.replicas"
    assert await harness.revision() == before


async def test_huge_number_in_merge_patch_is_bad_request(harness: ApiHarness) -> None:
    """Issue 8, the schemathesis run: a number beyond 64 bits in a JSON merge patch is a 400 naming it."""
    created = await harness.http.post(DEPLOYMENTS, content=DEPLOYMENT.replace(str(HUGE), "1"),
                                      headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201, created.text
    before = await harness.revision()
    patch = b'{"spec": {"replicas": ' + str(HUGE).encode() + b"}}"
    response = await harness.http.patch(f"{DEPLOYMENTS}/d", content=patch,
                                        headers={"Content-Type": "application/merge-patch+json"})
    assert response.status_code == 422, response.text
    assert response.json()["details"]["causes"][0]["field"] == "spec.replicas"
    assert await harness.revision() == before
    stored = await harness.http.get(f"{DEPLOYMENTS}/d")
    assert orjson.loads(stored.content)["spec"]["replicas"] == 1

"""Pages of connections start only where a previous page said: a token no page gave is a 400, on the HTTP route as
on the command line (tests/test_cli.py)."""

import json
import uuid

import pytest

from tests.conftest import SP_ID, request_body
from tests.integration.test_connections import listing, put
from tests.triggers.test_http_trigger import problem_of


@pytest.fixture
def table(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "page" + uuid.uuid4().hex[:12])
    return app_env


@pytest.mark.parametrize("token", ["garbage", "contoso-scim", "contoso-scim.00000000", "Not_A_Name", ""])
async def test_the_connection_list_answers_400_for_a_token_no_page_gave(table, token):
    for name in ("alpha", "beta"):
        assert (await put(name, request_body(correlationId=None))).status_code == 201
    first = json.loads((await listing({"top": "1"})).get_body())
    assert [c["name"] for c in first["value"]] == ["alpha"]
    second = json.loads((await listing({"top": "1", "continuationToken": first["continuationToken"]})).get_body())
    assert [c["name"] for c in second["value"]] == ["beta"]
    problem = problem_of(await listing({"continuationToken": token}), 400)
    assert "continuationToken is not one a previous page gave" in problem["detail"]
    assert SP_ID not in problem["detail"]

"""The OpenAPI document is true: it lists exactly our routes, and Schemathesis finds no
server error, no undocumented answer and no invalid input accepted."""
from __future__ import annotations

import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks
from schemathesis import checks as oa

from chat.api.openapi import build_openapi
from tests.support import Api

load_all_checks()
schema = schemathesis.openapi.from_dict(build_openapi())


def test_the_document_lists_exactly_the_api_routes(server):
    from app import create_app
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://", REDIS_URL=None)
    actual = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            actual |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    served = requests.get(server.base + "/api/openapi.json").json()
    documented = {(p, m) for p, ops in served["paths"].items() for m in ops}
    assert documented == actual


@pytest.fixture(scope="module")
def fuzz_user(server):
    return Api.new_user(server.base, "fuzz")


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_against_its_document(case, server, fuzz_user):
    case.call_and_validate(
        base_url=server.base, headers={"Authorization": f"Bearer {fuzz_user.token}"},
        checks=[oa.not_a_server_error, oa.status_code_conformance,
                oa.content_type_conformance, oa.response_schema_conformance,
                oa.negative_data_rejection])

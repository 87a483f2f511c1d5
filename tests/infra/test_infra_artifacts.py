"""Reading Chalice's `sam.json` (made by upflow.build from a stub app) and rewriting its swagger."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from infra.chalice_artifacts import (
    ArtifactError,
    handler_name,
    kernel_architecture,
    parse_template,
    read_artifacts,
    require_architecture,
    rewrite_swagger,
    swagger_json,
)
from upflow.definition import API_HANDLER, CHUNK_HANDLER, FUNCTIONS, PLANNER_HANDLER, RECONCILER_HANDLER

INVOKE = (
    "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:eu-west-1:1:function:f/invocations"
)


def test_build_writes_template_and_zip(chalice_build):
    assert (chalice_build / "sam.json").is_file()
    with zipfile.ZipFile(chalice_build / "deployment.zip") as archive:
        assert "app.py" in archive.namelist()


def test_one_function_per_definition_handler(chalice_build):
    artifacts = read_artifacts(chalice_build)
    assert set(artifacts.functions) == set(FUNCTIONS)
    assert artifacts.functions[API_HANDLER].handler == "app.app"
    assert artifacts.functions[API_HANDLER].logical_id == "APIHandler"
    assert artifacts.functions[PLANNER_HANDLER].handler == f"app.{PLANNER_HANDLER}"
    assert artifacts.functions[CHUNK_HANDLER].handler == f"app.{CHUNK_HANDLER}"
    # A plain @app.lambda_function (no event source in the template): the schedule is infra's.
    assert artifacts.functions[RECONCILER_HANDLER].handler == f"app.{RECONCILER_HANDLER}"
    assert len(artifacts.functions) == 4
    for function in artifacts.functions.values():
        assert function.runtime in ("python3.11", "python3.12")
        assert function.architectures == ("x86_64",)
    assert artifacts.architecture == "x86_64"
    assert artifacts.stage_name == "api"
    assert artifacts.zip_path == chalice_build / "deployment.zip"


def test_template_sqs_event_sources_are_not_used(chalice_build):
    """The stub's queues are local names; the program makes its own mappings instead."""
    template = json.loads((chalice_build / "sam.json").read_text())
    assert "upflow-local-events" in json.dumps(template)  # Chalice put them there...
    artifacts = read_artifacts(chalice_build)
    assert "upflow-local" not in json.dumps(artifacts.swagger)  # ...and nothing read keeps them


@pytest.mark.parametrize("missing", [None, "sam.json", "deployment.zip"])
def test_missing_build_says_make_package(chalice_build, tmp_path, missing):
    build_dir = tmp_path / "build"
    if missing:
        shutil.copytree(chalice_build, build_dir)
        (build_dir / missing).unlink()
    with pytest.raises(ArtifactError, match=r"Run `make package` first"):
        read_artifacts(build_dir)


@pytest.mark.parametrize(
    ("logical_id", "handler"), [("ProcessChunks", CHUNK_HANDLER), ("Reconcile", RECONCILER_HANDLER)]
)
def test_template_without_a_handler_is_refused(chalice_build, logical_id, handler):
    template = json.loads((chalice_build / "sam.json").read_text())
    del template["Resources"][logical_id]
    with pytest.raises(ArtifactError, match=handler):
        parse_template(template, chalice_build)


def test_handler_names():
    assert handler_name("app.app") == API_HANDLER
    assert handler_name(f"app.{PLANNER_HANDLER}") == PLANNER_HANDLER
    assert handler_name(f"app.{RECONCILER_HANDLER}") == RECONCILER_HANDLER
    with pytest.raises(ArtifactError):
        handler_name("other.module")


def test_swagger_rewrite_replaces_every_lambda_uri(chalice_build):
    artifacts = read_artifacts(chalice_build)
    original = json.dumps(artifacts.swagger)
    body = rewrite_swagger(artifacts.swagger, {"APIHandler": INVOKE})
    text = json.dumps(body)
    assert "Fn::" not in text and "${" not in text
    uris = [
        op["x-amazon-apigateway-integration"].get("uri")
        for path in body["paths"].values()
        for op in path.values()
    ]
    assert INVOKE in uris
    assert {uri for uri in uris if uri is not None} == {INVOKE}
    # CORS preflights stay Chalice's mock integrations.
    preflight = body["paths"]["/uploads/{upload_id}"]["options"]["x-amazon-apigateway-integration"]
    assert preflight["type"] == "mock"
    assert json.dumps(artifacts.swagger) == original  # the input is not modified
    assert json.loads(swagger_json(artifacts.swagger, {"APIHandler": INVOKE})) == body


def test_swagger_rewrite_refuses_unknown_expressions():
    swagger = {"paths": {"/x": {"get": {"x-amazon-apigateway-integration": {"uri": {"Ref": "Other"}}}}}}
    with pytest.raises(ArtifactError, match="unsupported CloudFormation expression at /paths/"):
        rewrite_swagger(swagger, {"APIHandler": INVOKE})
    other_function = {
        "uri": {
            "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/"
            "2015-03-31/functions/${Authorizer.Arn}/invocations"
        }
    }
    with pytest.raises(ArtifactError):
        rewrite_swagger(other_function, {"APIHandler": INVOKE})


def test_swagger_rewrite_sets_the_preflight_origin(chalice_build):
    artifacts = read_artifacts(chalice_build)
    packaged = json.dumps(artifacts.swagger)
    assert "\"'*'\"" in packaged  # Chalice baked the package-time origin into the preflights
    body = rewrite_swagger(artifacts.swagger, {"APIHandler": INVOKE}, allow_origin="https://web.example")
    origins = [
        op["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"][
            "method.response.header.Access-Control-Allow-Origin"
        ]
        for path in body["paths"].values()
        for method, op in path.items()
        if method == "options"
    ]
    assert origins and set(origins) == {"'https://web.example'"}


# --- the build's architecture --------------------------------------------------------


def test_the_kernel_in_the_zip_says_its_architecture(chalice_build, arm64_build):
    assert kernel_architecture(chalice_build / "deployment.zip") == "x86_64"  # compiled by gcc
    assert kernel_architecture(arm64_build / "deployment.zip") == "arm64"


def test_a_build_for_the_stacks_architecture_is_accepted(chalice_build, arm64_build):
    require_architecture(read_artifacts(chalice_build), "x86_64")
    arm = read_artifacts(arm64_build)
    assert arm.architecture == "arm64"
    require_architecture(arm, "arm64")


@pytest.mark.parametrize(("build", "stack"), [("chalice_build", "arm64"), ("arm64_build", "x86_64")])
def test_a_build_for_another_architecture_is_refused(request, build, stack):
    artifacts = read_artifacts(request.getfixturevalue(build))
    with pytest.raises(ArtifactError, match=rf"upflow:lambdaArchitecture is {stack}: .*LAMBDA_ARCH={stack}"):
        require_architecture(artifacts, stack)


def test_a_template_and_kernel_that_disagree_are_refused(chalice_build, retargeted, tmp_path):
    mixed = retargeted(chalice_build, tmp_path / "build", template="arm64")  # kernel still x86_64
    with pytest.raises(ArtifactError, match="template is for arm64 but its row kernel"):
        require_architecture(read_artifacts(mixed), "arm64")


def test_a_zip_without_the_kernel_is_refused(chalice_build, retargeted, tmp_path):
    bare = retargeted(chalice_build, tmp_path / "build", kernel="none")
    with pytest.raises(ArtifactError, match=r"no compiled row kernel \(upflow/core/_scan.so\)"):
        require_architecture(read_artifacts(bare), "x86_64")


def test_a_template_mixing_architectures_is_refused(chalice_build):
    template = json.loads((chalice_build / "sam.json").read_text())
    template["Resources"]["PlanObject"]["Properties"]["Architectures"] = ["arm64"]
    with pytest.raises(ArtifactError, match=r"mixes architectures \['arm64', 'x86_64'\]"):
        parse_template(template, chalice_build)

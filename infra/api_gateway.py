"""The REST API: Chalice's own swagger body pointed at the API function, its deployment and stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.chalice_artifacts import ChaliceArtifacts, swagger_json
from upflow.definition import API_HANDLER, ResourceNames


@dataclass(frozen=True)
class RestApi:
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    url: pulumi.Output[str]


def api_url(invoke_url: str) -> str:
    """The base URL clients append routes to (no trailing slash): ``https://…/api``."""
    return invoke_url.rstrip("/")


def create_rest_api(
    names: ResourceNames,
    artifacts: ChaliceArtifacts,
    function: aws.lambda_.Function,
    web_origin: pulumi.Input[str],
) -> RestApi:
    logical_id = artifacts.functions[API_HANDLER].logical_id
    body = pulumi.Output.all(function.invoke_arn, web_origin).apply(
        lambda values: swagger_json(artifacts.swagger, {logical_id: values[0]}, allow_origin=values[1])
    )
    api = aws.apigateway.RestApi(
        "api",
        name=f"upflow-{names.stack}-api",
        body=body,
        endpoint_configuration={"types": artifacts.endpoint_type},
    )
    child = pulumi.ResourceOptions(parent=api)
    deployment = aws.apigateway.Deployment(
        "api-deployment",
        rest_api=api.id,
        # A new deployment whenever the routes (the body) change.
        triggers={"body": body.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())},
        opts=child,
    )
    stage = aws.apigateway.Stage(
        "api-stage",
        rest_api=api.id,
        deployment=deployment.id,
        stage_name=artifacts.stage_name,
        opts=child,
    )
    aws.lambda_.Permission(
        "api-invoke",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="apigateway.amazonaws.com",
        source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*"),
        opts=child,
    )
    return RestApi(api, stage, stage.invoke_url.apply(api_url))

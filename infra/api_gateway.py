"""The REST API: Chalice's own swagger body pointed at the API function, its deployment and stage,
throttled (stage method settings and a usage plan), with JSON gateway responses for the
requests API Gateway itself refuses (429 throttled, 413 too large). With ``upflow:tracing`` the
stage traces requests with X-Ray (the API function's segments join them)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.chalice_artifacts import ChaliceArtifacts, swagger_json
from upflow.definition import API_HANDLER, Limits, ResourceNames


@dataclass(frozen=True)
class RestApi:
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    url: pulumi.Output[str]
    throttling: aws.apigateway.MethodSettings
    usage_plan: aws.apigateway.UsagePlan


@dataclass(frozen=True)
class GatewayResponse:
    """An answer API Gateway gives without calling the function, in the API's error shape."""

    response_type: str
    status_code: str
    body: dict[str, str]
    retry_after: str | None = None


# API Gateway's own refusals (docs/design.md, "HTTP API"): over the stage's rate → 429 like
# chalice local's limiter; over its 10 MB payload limit → 413 naming the body.
GATEWAY_RESPONSES = (
    GatewayResponse(
        "THROTTLED",
        "429",
        {"error": "rate_limited", "message": "too many requests: slow down and retry after a second"},
        retry_after="1",
    ),
    GatewayResponse(
        "REQUEST_TOO_LARGE",
        "413",
        {"error": "too_large", "message": "the request body is over API Gateway's 10 MB", "field": "body"},
    ),
)


def gateway_response_fingerprint() -> str:
    """Changes with the gateway responses, which only take effect with a new deployment."""
    return hashlib.sha256(repr(GATEWAY_RESPONSES).encode()).hexdigest()


def api_url(invoke_url: str) -> str:
    """The base URL clients append routes to (no trailing slash): ``https://…/api``."""
    return invoke_url.rstrip("/")


def create_gateway_responses(
    api: aws.apigateway.RestApi, web_origin: pulumi.Input[str]
) -> list[aws.apigateway.Response]:
    """JSON bodies (and CORS, so the page can read them) for API Gateway's own refusals."""
    origin = pulumi.Output.from_input(web_origin).apply(lambda value: f"'{value}'")
    responses = []
    for spec in GATEWAY_RESPONSES:
        parameters: dict[str, pulumi.Input[str]] = {
            "gatewayresponse.header.Access-Control-Allow-Origin": origin,
            "gatewayresponse.header.Content-Type": "'application/json'",
        }
        if spec.retry_after is not None:
            parameters["gatewayresponse.header.Retry-After"] = f"'{spec.retry_after}'"
        responses.append(
            aws.apigateway.Response(
                f"api-{spec.response_type.lower().replace('_', '-')}",
                rest_api_id=api.id,
                response_type=spec.response_type,
                status_code=spec.status_code,
                response_templates={"application/json": json.dumps(spec.body)},
                response_parameters=parameters,
                opts=pulumi.ResourceOptions(parent=api),
            )
        )
    return responses


def create_rest_api(
    names: ResourceNames,
    artifacts: ChaliceArtifacts,
    function: aws.lambda_.Function,
    web_origin: pulumi.Input[str],
    limits: Limits,
    *,
    tracing: bool = False,
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
    responses = create_gateway_responses(api, web_origin)
    deployment = aws.apigateway.Deployment(
        "api-deployment",
        rest_api=api.id,
        # A new deployment whenever the routes (the body) or the gateway responses change.
        triggers={
            "body": body.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()),
            "gateway_responses": gateway_response_fingerprint(),
        },
        opts=pulumi.ResourceOptions(parent=api, depends_on=responses),
    )
    stage = aws.apigateway.Stage(
        "api-stage",
        rest_api=api.id,
        deployment=deployment.id,
        stage_name=artifacts.stage_name,
        xray_tracing_enabled=tracing,
        opts=child,
    )
    # Every method of the stage: at most api_rate_limit requests per second, bursts of
    # api_burst_limit, for all clients together (what exceeds them gets the 429 above).
    throttling = aws.apigateway.MethodSettings(
        "api-throttling",
        rest_api=api.id,
        stage_name=stage.stage_name,
        method_path="*/*",
        settings={
            "throttling_rate_limit": float(limits.api_rate_limit),
            "throttling_burst_limit": limits.api_burst_limit,
        },
        opts=child,
    )
    # The same limits as a usage plan on the stage: where API keys are added later (per
    # customer), each key is held to them; CloudWatch and the console show the plan.
    usage_plan = aws.apigateway.UsagePlan(
        "api-usage-plan",
        name=f"upflow-{names.stack}-api",
        description="upflow: the API's request rate and burst (stack settings apiRateLimit, apiBurstLimit)",
        api_stages=[{"api_id": api.id, "stage": stage.stage_name}],
        throttle_settings={"rate_limit": float(limits.api_rate_limit), "burst_limit": limits.api_burst_limit},
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
    return RestApi(api, stage, stage.invoke_url.apply(api_url), throttling, usage_plan)

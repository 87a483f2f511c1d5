"""Read what ``make package`` (``python -m upflow.build``) wrote: ``sam.json`` + ``deployment.zip``.

Pure: no Pulumi resources are created here. The program takes from Chalice's SAM
template only what Chalice knows best -- each function's handler string, runtime
and architecture, and the API's swagger body (Chalice routes by resource path, so
its own swagger is the API). Everything else (roles, queues, event sources,
sizing) is the program's. The template's SQS event sources and its single
``DefaultRole`` are deliberately ignored.

The build's architecture is read twice: from the template (Chalice's
``lambda_architecture``) and from the ELF header of the compiled row kernel inside
the zip. They must agree, and :func:`require_architecture` refuses a build that is
not for the stack's ``upflow:lambdaArchitecture``.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from upflow.build import KERNEL_ENTRY, elf_architecture
from upflow.definition import API_HANDLER, FUNCTIONS

TEMPLATE_NAME = "sam.json"
ZIP_NAME = "deployment.zip"
PACKAGE_COMMAND = "make package"
# Chalice's handler string for the REST API function (``app.app``) and its logical id.
CHALICE_API_HANDLER = "app.app"
REST_API_LOGICAL_ID = "RestAPI"
CORS_ORIGIN_PARAMETER = "method.response.header.Access-Control-Allow-Origin"
_FUNCTION_TYPE = "AWS::Serverless::Function"
_INTEGRATION_URI = re.compile(
    r"^arn:\$\{AWS::Partition\}:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/"
    r"\$\{(?P<logical_id>[A-Za-z0-9]+)\.Arn\}/invocations$"
)


class ArtifactError(pulumi.RunError):
    """The build folder is missing or does not match upflow's definition.

    A ``RunError`` so ``pulumi up`` prints the message without a stack trace.
    """


@dataclass(frozen=True)
class ChaliceFunction:
    """One Lambda function of the Chalice app, as the template describes it."""

    name: str  # the handler name from upflow.definition (api_handler, plan_object, ...)
    logical_id: str  # the template's resource name (APIHandler, PlanObject, ...)
    handler: str  # the Lambda handler string (app.app, app.plan_object, ...)
    runtime: str
    architectures: tuple[str, ...]


@dataclass(frozen=True)
class ChaliceArtifacts:
    build_dir: Path
    zip_path: Path
    functions: Mapping[str, ChaliceFunction]  # keyed by handler name
    swagger: Mapping[str, Any]  # the API definition body, still with CloudFormation intrinsics
    stage_name: str
    endpoint_type: str
    architecture: str  # what the functions and the row kernel in the zip were built for


def _missing(what: str, build_dir: Path) -> ArtifactError:
    return ArtifactError(
        f"{what} not found in {build_dir}. Run `{PACKAGE_COMMAND}` first "
        f"(python -m upflow.build {build_dir}) to build the Chalice deployment package."
    )


def handler_name(handler: str) -> str:
    """Map a Lambda handler string of the Chalice app to upflow's handler name."""
    module, _, attribute = handler.partition(".")
    if module != "app" or not attribute:
        raise ArtifactError(f"unexpected handler {handler!r} in the Chalice template")
    return API_HANDLER if handler == CHALICE_API_HANDLER else attribute


def parse_template(template: Mapping[str, Any], build_dir: Path) -> ChaliceArtifacts:
    """Extract the functions and the API from a Chalice SAM template (pure)."""
    resources: Mapping[str, Any] = template.get("Resources", {})
    functions: dict[str, ChaliceFunction] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != _FUNCTION_TYPE:
            continue
        props = resource["Properties"]
        name = handler_name(props["Handler"])
        functions[name] = ChaliceFunction(
            name=name,
            logical_id=logical_id,
            handler=props["Handler"],
            runtime=props["Runtime"],
            architectures=tuple(props.get("Architectures", ("x86_64",))),
        )
    expected, found = set(FUNCTIONS), set(functions)
    if expected != found:
        raise ArtifactError(
            "the Chalice template's functions do not match upflow.definition.FUNCTIONS: "
            f"missing {sorted(expected - found)}, unexpected {sorted(found - expected)}. "
            f"Rebuild with `{PACKAGE_COMMAND}` after checking api/app.py's handler names."
        )
    architectures = {arch for function in functions.values() for arch in function.architectures}
    if len(architectures) != 1:
        raise ArtifactError(
            f"the Chalice template in {build_dir} mixes architectures {sorted(architectures)}: "
            f"rebuild with `{PACKAGE_COMMAND}`"
        )
    rest_api = resources.get(REST_API_LOGICAL_ID)
    if rest_api is None:
        raise ArtifactError(f"the Chalice template in {build_dir} has no {REST_API_LOGICAL_ID}")
    props = rest_api["Properties"]
    return ChaliceArtifacts(
        build_dir=build_dir,
        zip_path=build_dir / ZIP_NAME,
        functions=functions,
        swagger=props["DefinitionBody"],
        stage_name=props.get("StageName", "api"),
        endpoint_type=props.get("EndpointConfiguration", "EDGE"),
        architecture=architectures.pop(),
    )


def kernel_architecture(zip_path: Path) -> str | None:
    """The architecture of the row kernel in the zip (None: not an x86_64/arm64 ELF library)."""
    try:
        with zipfile.ZipFile(zip_path) as archive, archive.open(KERNEL_ENTRY) as library:
            return elf_architecture(library.read(20))
    except KeyError:
        raise ArtifactError(
            f"{zip_path} holds no compiled row kernel ({KERNEL_ENTRY}): rebuild with `{PACKAGE_COMMAND}`"
        ) from None
    except zipfile.BadZipFile as error:
        raise ArtifactError(f"{zip_path} is not a zip ({error}): rebuild with `{PACKAGE_COMMAND}`") from None


def require_architecture(artifacts: ChaliceArtifacts, expected: str) -> None:
    """Refuse a build that is not for ``expected`` (the stack's ``upflow:lambdaArchitecture``)."""
    kernel = kernel_architecture(artifacts.zip_path)
    if kernel != artifacts.architecture:
        raise ArtifactError(
            f"{artifacts.zip_path}: the template is for {artifacts.architecture} but its row kernel "
            f"({KERNEL_ENTRY}) is for {kernel}: rebuild with `{PACKAGE_COMMAND}`"
        )
    if artifacts.architecture != expected:
        raise ArtifactError(
            f"the package in {artifacts.build_dir} was built for {artifacts.architecture}, but "
            f"upflow:lambdaArchitecture is {expected}: rebuild it with "
            f"`{PACKAGE_COMMAND} LAMBDA_ARCH={expected}` (or set the key to {artifacts.architecture})"
        )


def read_artifacts(build_dir: Path) -> ChaliceArtifacts:
    """Read ``sam.json`` and check ``deployment.zip`` in ``build_dir``."""
    template_path = build_dir / TEMPLATE_NAME
    if not build_dir.is_dir():
        raise _missing("the build folder", build_dir)
    if not template_path.is_file():
        raise _missing(TEMPLATE_NAME, build_dir)
    if not (build_dir / ZIP_NAME).is_file():
        raise _missing(ZIP_NAME, build_dir)
    template = json.loads(template_path.read_text())
    return parse_template(template, build_dir)


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))


def rewrite_swagger(
    swagger: Mapping[str, Any], invoke_arns: Mapping[str, str], allow_origin: str | None = None
) -> dict[str, Any]:
    """Replace the template's Lambda integration URIs by real invoke ARNs (pure).

    ``invoke_arns`` maps a function's logical id (``APIHandler``) to its invoke
    ARN (``arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<arn>/invocations``,
    which is ``aws.lambda_.Function.invoke_arn``). Any other CloudFormation
    intrinsic left in the body is an error: API Gateway would reject it.

    Chalice bakes the CORS origin of its preflight (OPTIONS mock) answers into the
    swagger at package time; ``allow_origin`` replaces it by the stack's origin so
    preflights and the Lambda's own answers (UPFLOW_WEB_ORIGIN) agree.
    """

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            if allow_origin is not None and CORS_ORIGIN_PARAMETER in node:
                node = {**node, CORS_ORIGIN_PARAMETER: f"'{allow_origin}'"}
            if _is_intrinsic(node):
                sub = node.get("Fn::Sub")
                match = _INTEGRATION_URI.match(sub) if isinstance(sub, str) else None
                if match is None or match["logical_id"] not in invoke_arns:
                    raise ArtifactError(f"unsupported CloudFormation expression at {path}: {node}")
                return invoke_arns[match["logical_id"]]
            return {key: walk(value, f"{path}/{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, f"{path}/{index}") for index, value in enumerate(node)]
        return node

    result: dict[str, Any] = walk(copy.deepcopy(dict(swagger)), "")
    return result


def swagger_json(
    swagger: Mapping[str, Any], invoke_arns: Mapping[str, str], allow_origin: str | None = None
) -> str:
    """The rewritten body as API Gateway's ``body`` string (stable key order)."""
    return json.dumps(rewrite_swagger(swagger, invoke_arns, allow_origin), sort_keys=True)

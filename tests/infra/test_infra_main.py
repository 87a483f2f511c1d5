"""`infra/__main__.py` as the Pulumi CLI runs it: by path, from elsewhere, reading stack config.

Runs in a fresh interpreter (no pulumi state shared with other tests) whose cwd is not
the repo and whose sys.path lacks the repo root, like the language host's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from infra.config import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import json, runpy, sys
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        types = []

        def new_resource(self, args):
            self.types.append(args.typ)
            computed = {"arn": f"arn:aws:mock:::{args.name}", "url": f"https://sqs/{args.name}",
                        "invokeArn": f"arn:aws:apigateway:r:lambda:path/f/{args.name}/invocations",
                        "executionArn": "arn:aws:execute-api:r:1:api", "invokeUrl": "https://api/api",
                        "domainName": "d1.cloudfront.net", "bucketRegionalDomainName": "b.s3"}
            return f"{args.name}-id", {**computed, **args.inputs}

        def call(self, args):
            return {}, None

    config = json.loads(sys.argv[2])
    pulumi.runtime.set_all_config(config, ["upflow:tokenSecret"])
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="upflow", stack="ci", preview=False)
    assert not any(p.rstrip("/") == sys.argv[1] for p in sys.path), "repo root already importable"
    pulumi.runtime.test(lambda: runpy.run_path(sys.argv[1] + "/infra", run_name="__main__"))()
    print(json.dumps(sorted(set(mocks.types))))
    """
)


def test_main_runs_the_program_from_stack_config(chalice_build, web_dist, tmp_path):
    config = {
        "aws:region": "eu-west-1",
        "upflow:tokenSecret": "s3cret",
        "upflow:bucketSuffix": "ci",
        "upflow:buildDir": str(chalice_build),
        "upflow:webDist": str(web_dist),
    }
    result = subprocess.run(
        [sys.executable, "-P", "-c", SCRIPT, str(REPO_ROOT), json.dumps(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    types = json.loads(result.stdout.strip().splitlines()[-1])
    assert "aws:lambda/function:Function" in types
    assert "aws:apigateway/restApi:RestApi" in types
    assert "aws:cloudfront/distribution:Distribution" in types
    assert "aws:cloudwatch/dashboard:Dashboard" in types


def test_main_without_a_build_names_make_package(web_dist, tmp_path):
    config = {
        "aws:region": "eu-west-1",
        "upflow:tokenSecret": "s3cret",
        "upflow:buildDir": str(tmp_path / "none"),
        "upflow:webDist": str(web_dist),
    }
    result = subprocess.run(
        [sys.executable, "-P", "-c", SCRIPT, str(REPO_ROOT), json.dumps(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "make package" in result.stderr

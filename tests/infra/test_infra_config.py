"""`upflow:*` stack configuration: the example stack file is valid and defaults come from definition.py."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.config import (
    CONFIG_KEYS,
    DEFAULT_BUILD_DIR,
    DEFAULT_WEB_DIST,
    FUNCTION_CONFIG_PREFIX,
    REGION_ENV_VARS,
    REPO_ROOT,
    ConfigError,
    StackConfig,
    load_config,
)
from infra.functions import powertools_layer_arn
from upflow.definition import (
    API_HANDLER,
    CHUNK_HANDLER,
    FUNCTIONS,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    FunctionSpec,
    Limits,
    names_for,
)

yaml: Any = importlib.import_module("yaml")  # PyYAML comes with chalice; no stubs needed
EXAMPLE = REPO_ROOT / "Pulumi.example.yaml"
PATH_KEYS = {"buildDir", "webDist"}  # documented in docs/deploy.md, not needed in the example


@pytest.fixture
def stack_config():
    """Set `upflow:*` values as `pulumi config` would; cleared afterwards."""

    def set_values(values: dict[str, str], *, region: str | None = "eu-west-1") -> StackConfig:
        config = {f"upflow:{k}": v for k, v in values.items()}
        if region is not None:
            config["aws:region"] = region
        pulumi.runtime.set_all_config(config, ["upflow:tokenSecret"])
        return load_config(stack="dev")

    yield set_values
    pulumi.runtime.set_all_config({}, [])


def example_values() -> dict[str, str]:
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    raw = {key.removeprefix("upflow:"): value for key, value in config.items() if key.startswith("upflow:")}
    assert set(raw.pop("tokenSecret")) == {"secure"}  # stored as a secret
    # A structured value (alarmEmails, a list) reaches the program as JSON, as the CLI passes it.
    values = {key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}
    values["tokenSecret"] = "s3cret"
    return values


def test_example_uses_only_known_keys_and_all_of_them():
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    keys = {key.removeprefix("upflow:") for key in config if key.startswith("upflow:")}
    assert keys <= set(CONFIG_KEYS)
    assert set(CONFIG_KEYS) - keys == PATH_KEYS
    assert "aws:region" in config


def test_example_values_are_applied(stack_config):
    values = example_values()
    config = stack_config(values)
    assert config.names == names_for("dev", values["bucketSuffix"])
    assert config.web_origin is None  # empty → the CloudFront URL
    assert config.limits.chunk_size == int(values["chunkSize"])
    assert config.limits.max_upload_size == int(values["maxUploadSize"])
    assert config.limits.url_expiry_seconds == int(values["urlExpirySeconds"])
    assert config.limits.lifecycle_days == int(values["lifecycleDays"])
    assert config.limits.chunk_batch_size == int(values["chunkBatchSize"])
    assert config.limits.report_retention_days == int(values["reportRetentionDays"])
    assert config.limits.results_retention_days == int(values["resultsRetentionDays"])
    assert config.limits.token_ttl_seconds == int(values["tokenTtlSeconds"])
    assert config.limits.api_rate_limit == int(values["apiRateLimit"])
    assert config.limits.api_burst_limit == int(values["apiBurstLimit"])
    assert config.limits.events_max_concurrency == int(values["eventsMaxConcurrency"])
    assert config.limits.chunks_max_concurrency == int(values["chunksMaxConcurrency"])
    assert config.functions[API_HANDLER] == FunctionSpec(
        int(values["apiMemoryMb"]), int(values["apiTimeoutSeconds"])
    )
    assert config.functions[CHUNK_HANDLER].timeout_seconds == int(values["processorTimeoutSeconds"])
    assert config.log_retention_days == int(values["logRetentionDays"])
    assert config.force_destroy_uploads is False
    assert config.architecture == values["lambdaArchitecture"] == "x86_64"
    assert isinstance(config.token_secret, pulumi.Output)
    assert config.functions[RECONCILER_HANDLER] == FunctionSpec(
        int(values["reconcilerMemoryMb"]), int(values["reconcilerTimeoutSeconds"])
    )
    assert config.reconcile_every_minutes == int(values["reconcileEveryMinutes"])
    assert config.alarm_emails == ()
    # Empty thresholds: the defaults, which follow the timeouts and the schedule.
    assert (config.events_age_alarm_seconds, config.chunks_age_alarm_seconds) == (None, None)
    assert config.dlq_age_alarm_seconds is None


def test_example_documents_the_definitions_defaults(stack_config):
    """The example shows the product defaults, so it drifts loudly if definition.py changes."""
    values = example_values()
    config = stack_config(values)
    defaults = Limits()
    for field in (
        "chunk_size",
        "max_upload_size",
        "url_expiry_seconds",
        "lifecycle_days",
        "report_retention_days",
        "results_retention_days",
        "token_ttl_seconds",
        "api_rate_limit",
        "api_burst_limit",
        "chunk_batch_size",
        "events_batch_size",
        "events_max_concurrency",
        "chunks_max_concurrency",
        "reconcile_every_seconds",
        "max_receives",
    ):
        assert getattr(config.limits, field) == getattr(defaults, field), field
    assert dict(config.functions) == dict(FUNCTIONS)
    names = config.names
    # What the example's comments say the empty thresholds come to.
    assert config.age_alarm_seconds() == {
        names.events_queue: 3600,
        names.chunks_queue: 3600,
        names.events_dlq: 900,
        names.chunks_dlq: 900,
    }


def test_defaults_come_from_definition(stack_config):
    config = stack_config({"tokenSecret": "s3cret"})
    assert config.names == names_for("dev")
    assert config.limits == Limits()
    assert dict(config.functions) == dict(FUNCTIONS)
    assert config.web_origin is None
    assert config.architecture == "x86_64"
    assert (config.build_dir, config.web_dist) == (DEFAULT_BUILD_DIR, DEFAULT_WEB_DIST)
    assert config.reconcile_every_minutes == Limits().reconcile_every_seconds // 60 == 5
    assert config.limits.max_receives == 5
    assert config.alarm_emails == ()
    assert config.age_alarm_seconds() == {
        config.names.events_queue: 2 * 6 * FUNCTIONS[PLANNER_HANDLER].timeout_seconds,
        config.names.chunks_queue: 2 * 6 * FUNCTIONS[CHUNK_HANDLER].timeout_seconds,
        config.names.events_dlq: 3 * 300,
        config.names.chunks_dlq: 3 * 300,
    }


def test_overrides(stack_config):
    config = stack_config(
        {
            "tokenSecret": "s3cret",
            "webOrigin": "*",
            "buildDir": "out/pkg",
            "webDist": "/srv/dist",
            "plannerTimeoutSeconds": "60",
            "forceDestroyUploads": "true",
            "lambdaArchitecture": "arm64",
            "lifecycleDays": "14",
            "reportRetentionDays": "90",
            "chunksMaxConcurrency": "5",
            "apiRateLimit": "10",
            "apiBurstLimit": "20",
            "reconcileEveryMinutes": "10",
            "reconcilerTimeoutSeconds": "120",
            "alarmEmails": '["ops@example.com", "oncall@example.org"]',
            "eventsAgeAlarmSeconds": "1200",
            "dlqAgeAlarmSeconds": "",
        }
    )
    assert config.reconcile_every_minutes == 10
    assert config.limits.reconcile_every_seconds == 600
    assert config.functions[RECONCILER_HANDLER].timeout_seconds == 120
    assert config.alarm_emails == ("ops@example.com", "oncall@example.org")
    ages = config.age_alarm_seconds()
    assert ages[config.names.events_queue] == 1200
    assert ages[config.names.chunks_queue] == 3600  # not set: 2x its visibility
    assert ages[config.names.events_dlq] == ages[config.names.chunks_dlq] == 3 * 600  # empty: the default
    assert config.limits.lifecycle_days == 14 and config.limits.report_retention_days == 90
    assert config.limits.chunks_max_concurrency == 5
    assert (config.limits.api_rate_limit, config.limits.api_burst_limit) == (10, 20)
    assert config.architecture == "arm64"
    assert config.web_origin == "*"
    assert config.build_dir == REPO_ROOT / "out" / "pkg"
    assert config.web_dist == Path("/srv/dist")
    assert config.functions[PLANNER_HANDLER].timeout_seconds == 60
    assert config.force_destroy_uploads is True


def test_token_secret_is_required(stack_config):
    with pytest.raises(pulumi.ConfigMissingError):
        stack_config({})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("apiTimeoutSeconds", "60", "API Gateway"),
        ("processorTimeoutSeconds", "9000", "visibility"),
        ("chunkBatchSize", "20000", "chunkBatchSize"),
        ("lambdaArchitecture", "aarch64", "lambdaArchitecture 'aarch64' is not one of x86_64, arm64"),
        ("chunksMaxConcurrency", "1", "chunksMaxConcurrency must be within 2..1000"),
        ("eventsMaxConcurrency", "1001", "eventsMaxConcurrency must be within 2..1000"),
        ("lifecycleDays", "0", "lifecycle_days must be at least 1"),
        ("reportRetentionDays", "0", "report_retention_days must be positive"),
        ("apiRateLimit", "0", "api_rate_limit must be positive"),
        ("apiBurstLimit", "10", "apiBurstLimit must be at least apiRateLimit"),
        ("reconcileEveryMinutes", "0", "reconcileEveryMinutes must be a whole number of minutes"),
        ("alarmEmails", "ops@example.com", r"alarmEmails must be a list .* --path"),
        ("alarmEmails", '"ops@example.com"', "alarmEmails must be a list"),
        ("alarmEmails", '["ops@example.com", "nobody"]', "'nobody' is not an email address"),
        ("eventsAgeAlarmSeconds", "30", "eventsAgeAlarmSeconds must be within 60.."),
        ("chunksAgeAlarmSeconds", "345600", "retention"),
        ("chunksAgeAlarmSeconds", "1h", "chunksAgeAlarmSeconds must be a whole number of seconds"),
        ("dlqAgeAlarmSeconds", str(14 * 24 * 3600), "dlqAgeAlarmSeconds must be within 60.."),
    ],
)
def test_out_of_range_values_are_refused(stack_config, key, value, message):
    with pytest.raises(ConfigError, match=message):
        stack_config({"tokenSecret": "s3cret", key: value})


def test_bucket_names_must_be_valid(stack_config):
    with pytest.raises(ConfigError, match="bucket name"):
        stack_config({"tokenSecret": "s3cret", "bucketSuffix": "My_Account"})


@pytest.mark.parametrize("receives", [3, 1001])
def test_redrive_needs_at_least_five_receives(receives):
    """AWS's guidance for Lambda SQS sources (a throttled batch counts as a receive)."""
    with pytest.raises(ConfigError, match="at least 5"):
        StackConfig(
            names=names_for("dev"), token_secret="s", region="eu-west-1", limits=Limits(max_receives=receives)
        )


def test_every_handler_has_sizing_keys():
    assert set(FUNCTION_CONFIG_PREFIX) == set(FUNCTIONS)
    assert {"reconcilerMemoryMb", "reconcilerTimeoutSeconds"} <= set(CONFIG_KEYS)


def test_observability_settings(stack_config):
    defaults = stack_config({"tokenSecret": "s3cret"})
    assert (defaults.tracing, defaults.log_level, defaults.powertools_layer_arn) == (False, "INFO", None)
    assert defaults.region == "eu-west-1"
    layer = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-arm64:30"
    config = stack_config(
        {
            "tokenSecret": "s3cret",
            "tracing": "true",
            "logLevel": "debug",
            "lambdaArchitecture": "arm64",
            "powertoolsLayerArn": layer,
        }
    )
    assert (config.tracing, config.log_level, config.powertools_layer_arn) == (True, "DEBUG", layer)
    # Empty: the default layer.
    assert stack_config({"tokenSecret": "s3cret", "powertoolsLayerArn": ""}).powertools_layer_arn is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"logLevel": "LOUD"}, "logLevel 'LOUD' is not one of DEBUG, INFO"),
        ({"powertoolsLayerArn": "AWSLambdaPowertoolsPythonV3:3"}, "not a layer version ARN"),
        (
            {"powertoolsLayerArn": "arn:aws:lambda:us-east-1:017000801446:layer:X:1"},
            "is in us-east-1, but the stack is in eu-west-1",
        ),
        (
            {
                "powertoolsLayerArn": (
                    "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-arm64:27"
                )
            },
            "built for arm64, but lambdaArchitecture is x86_64",
        ),
    ],
)
def test_bad_observability_settings_are_refused(stack_config, values, message):
    with pytest.raises(ConfigError, match=message):
        stack_config({"tokenSecret": "s3cret", **values})


def test_the_region_comes_from_aws_region_or_the_environment(stack_config, monkeypatch):
    for name in REGION_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="pulumi config set aws:region"):
        stack_config({"tokenSecret": "s3cret"}, region=None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert stack_config({"tokenSecret": "s3cret"}, region=None).region == "ap-south-1"
    assert stack_config({"tokenSecret": "s3cret"}, region="us-west-2").region == "us-west-2"
    with pytest.raises(ConfigError, match="not an AWS region"):
        stack_config({"tokenSecret": "s3cret"}, region="Ireland")


def test_the_default_powertools_layer_follows_region_architecture_and_runtime():
    assert powertools_layer_arn("eu-west-1", "x86_64", "python3.11") == (
        "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:27"
    )
    assert powertools_layer_arn("ap-southeast-2", "arm64", "python3.12").endswith(
        ":ap-southeast-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:27"
    )
    # Other partitions publish it from other accounts: the stack must name it.
    for region in ("cn-north-1", "us-gov-west-1"):
        with pytest.raises(ConfigError, match="powertoolsLayerArn"):
            powertools_layer_arn(region, "x86_64", "python3.11")


def test_deploy_doc_lists_every_setting():
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    assert [key for key in CONFIG_KEYS if f"`{key}`" not in text] == []

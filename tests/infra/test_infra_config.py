"""`upflow:*` stack configuration: the example stack file is valid and defaults come from definition.py."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.config import (
    CONFIG_KEYS,
    DEFAULT_BUILD_DIR,
    DEFAULT_WEB_DIST,
    REPO_ROOT,
    ConfigError,
    StackConfig,
    load_config,
)
from upflow.definition import (
    API_HANDLER,
    CHUNK_HANDLER,
    FUNCTIONS,
    PLANNER_HANDLER,
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

    def set_values(values: dict[str, str]) -> StackConfig:
        pulumi.runtime.set_all_config({f"upflow:{k}": v for k, v in values.items()}, ["upflow:tokenSecret"])
        return load_config(stack="dev")

    yield set_values
    pulumi.runtime.set_all_config({}, [])


def example_values() -> dict[str, str]:
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    values = {
        key.removeprefix("upflow:"): value for key, value in config.items() if key.startswith("upflow:")
    }
    assert set(values.pop("tokenSecret")) == {"secure"}  # stored as a secret
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
    ):
        assert getattr(config.limits, field) == getattr(defaults, field), field
    assert dict(config.functions) == dict(FUNCTIONS)


def test_defaults_come_from_definition(stack_config):
    config = stack_config({"tokenSecret": "s3cret"})
    assert config.names == names_for("dev")
    assert config.limits == Limits()
    assert dict(config.functions) == dict(FUNCTIONS)
    assert config.web_origin is None
    assert config.architecture == "x86_64"
    assert (config.build_dir, config.web_dist) == (DEFAULT_BUILD_DIR, DEFAULT_WEB_DIST)


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
        }
    )
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
    ],
)
def test_out_of_range_values_are_refused(stack_config, key, value, message):
    with pytest.raises(ConfigError, match=message):
        stack_config({"tokenSecret": "s3cret", key: value})


def test_bucket_names_must_be_valid(stack_config):
    with pytest.raises(ConfigError, match="bucket name"):
        stack_config({"tokenSecret": "s3cret", "bucketSuffix": "My_Account"})

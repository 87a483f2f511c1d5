"""The web page: a private bucket behind CloudFront (origin access control), the built
``web/dist`` and a ``config.json`` telling the page its API URL, so one build serves every stack."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.storage import private_bucket
from upflow.definition import ResourceNames

WEB_BUILD_COMMAND = "make web"
INDEX_DOCUMENT = "index.html"
SITE_CONFIG_KEY = "config.json"
# AWS managed cache policy "Managed-CachingOptimized" (honours the objects' Cache-Control).
CACHING_OPTIMIZED_POLICY_ID = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ORIGIN_ID = "site-bucket"
# Vite fingerprints everything under assets/; the rest must be revalidated.
IMMUTABLE_PREFIX = "assets/"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
REVALIDATE_CACHE = "no-cache"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}


class WebBuildMissing(pulumi.RunError):
    """``web/dist`` has not been built."""


@dataclass(frozen=True)
class SiteFile:
    key: str
    path: Path
    content_type: str
    cache_control: str


@dataclass(frozen=True)
class SiteHosting:
    bucket: aws.s3.Bucket
    distribution: aws.cloudfront.Distribution
    url: pulumi.Output[str]


def content_type(path: Path) -> str:
    known = _CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def cache_control(key: str) -> str:
    return IMMUTABLE_CACHE if key.startswith(IMMUTABLE_PREFIX) else REVALIDATE_CACHE


def site_files(dist: Path) -> list[SiteFile]:
    """The files of the web build to upload (sorted; a stale ``config.json`` is skipped)."""
    if not (dist / INDEX_DOCUMENT).is_file():
        raise WebBuildMissing(
            f"{dist / INDEX_DOCUMENT} not found. Run `{WEB_BUILD_COMMAND}` first to build the web page."
        )

    def walk() -> Iterator[SiteFile]:
        for path in sorted(p for p in dist.rglob("*") if p.is_file()):
            key = path.relative_to(dist).as_posix()
            if key != SITE_CONFIG_KEY:
                yield SiteFile(key, path, content_type(path), cache_control(key))

    return list(walk())


def site_config_json(api_url: str) -> str:
    """What the page fetches at start-up: ``{"apiUrl": <api url>}``."""
    return json.dumps({"apiUrl": api_url})


def create_site_hosting(names: ResourceNames) -> SiteHosting:
    private = private_bucket("site", names.site_bucket, force_destroy=True)
    bucket = private.bucket
    oac = aws.cloudfront.OriginAccessControl(
        "site-oac",
        name=f"upflow-{names.stack}-site",
        origin_access_control_origin_type="s3",
        signing_behavior="always",
        signing_protocol="sigv4",
    )
    distribution = aws.cloudfront.Distribution(
        "site-cdn",
        enabled=True,
        comment=f"upflow {names.stack} web page",
        default_root_object=INDEX_DOCUMENT,
        http_version="http2and3",
        is_ipv6_enabled=True,
        price_class="PriceClass_100",
        origins=[
            {
                "origin_id": ORIGIN_ID,
                "domain_name": bucket.bucket_regional_domain_name,
                "origin_access_control_id": oac.id,
            }
        ],
        default_cache_behavior={
            "target_origin_id": ORIGIN_ID,
            "viewer_protocol_policy": "redirect-to-https",
            "allowed_methods": ["GET", "HEAD"],
            "cached_methods": ["GET", "HEAD"],
            "cache_policy_id": CACHING_OPTIMIZED_POLICY_ID,
            "compress": True,
        },
        restrictions={"geo_restriction": {"restriction_type": "none"}},
        viewer_certificate={"cloudfront_default_certificate": True},
    )
    aws.s3.BucketPolicy(
        "site-policy",
        bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, distribution.arn).apply(
            lambda arns: json.dumps(policies.site_bucket_policy(arns[0], arns[1]))
        ),
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[private.public_access_block]),
    )
    url = distribution.domain_name.apply(lambda domain: f"https://{domain}")
    return SiteHosting(bucket, distribution, url)


def publish_site(hosting: SiteHosting, files: list[SiteFile], api_url: pulumi.Input[str]) -> None:
    """Upload the web build and the stack's ``config.json`` beside it."""
    child = pulumi.ResourceOptions(parent=hosting.bucket)
    for item in files:
        aws.s3.BucketObjectv2(
            f"site/{item.key}",
            bucket=hosting.bucket.id,
            key=item.key,
            source=pulumi.FileAsset(str(item.path)),
            content_type=item.content_type,
            cache_control=item.cache_control,
            opts=child,
        )
    aws.s3.BucketObjectv2(
        f"site/{SITE_CONFIG_KEY}",
        bucket=hosting.bucket.id,
        key=SITE_CONFIG_KEY,
        content=pulumi.Output.from_input(api_url).apply(site_config_json),
        content_type=_CONTENT_TYPES[".json"],
        cache_control=REVALIDATE_CACHE,
        opts=child,
    )

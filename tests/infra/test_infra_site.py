"""The web build's upload plan and the generated config.json (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.site import WebBuildMissing, cache_control, content_type, site_config_json, site_files


def test_site_files_skip_a_stale_config_json(web_dist):
    keys = [f.key for f in site_files(web_dist)]
    assert keys == sorted(keys)
    assert "config.json" not in keys
    assert {"index.html", "assets/index-3f2a1b.js", "assets/index-3f2a1b.css", "favicon.svg"} == set(keys)


def test_missing_web_build_says_make_web(tmp_path):
    with pytest.raises(WebBuildMissing, match="Run `make web` first"):
        site_files(tmp_path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.woff2", "font/woff2"),
        ("a.js.map", "application/json"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(name, expected):
    assert content_type(Path(name)) == expected


def test_fingerprinted_assets_are_immutable_and_the_rest_revalidates():
    assert "immutable" in cache_control("assets/index-3f2a1b.js")
    assert cache_control("index.html") == "no-cache"


def test_config_json_key_is_apiUrl():
    assert json.loads(site_config_json("https://x.execute-api.r.amazonaws.com/api")) == {
        "apiUrl": "https://x.execute-api.r.amazonaws.com/api"
    }

"""The ``upflow`` command's pure helpers and its offline paths (no API needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from upflow.client.api import UploadStatus
from upflow.client.cli import (
    api_url,
    build_parser,
    check_status,
    main,
    processing_line,
    summary_lines,
    summary_of,
)


def status_doc(**overrides: Any) -> UploadStatus:
    doc = {
        "upload_id": "u1",
        "status": "completed_with_errors",
        "size": 10,
        "part_size": 8,
        "part_count": 2,
        "chunks": {"total": 4, "done": 3, "failed": 1},
        "summary": {
            "upload_id": "u1",
            "status": "completed_with_errors",
            "rows_total": 5,
            "rows_valid": 4,
            "rows_invalid": 1,
            "errors": {"invalid_document": 1},
            "amount_valid": "10.50",
        },
        "error": None,
    }
    doc.update(overrides)
    return UploadStatus.from_json(doc)


def test_api_url_precedence() -> None:
    assert api_url("http://x/", {"UPFLOW_API": "http://env"}) == "http://x"
    assert api_url(None, {"UPFLOW_API": "http://env/"}) == "http://env"
    assert api_url(None, {}) == "http://127.0.0.1:8000"


def test_summary_has_the_contract_fields_in_order() -> None:
    summary = summary_of(status_doc())
    assert list(summary) == [
        "upload_id",
        "status",
        "rows_total",
        "rows_valid",
        "rows_invalid",
        "errors",
        "amount_valid",
    ]
    assert summary["errors"] == {"invalid_document": 1}
    lines = summary_lines(summary)
    assert lines[0].split() == ["upload_id:", "u1"] and "  invalid_document: 1" in lines


def test_processing_line_counts_done_and_failed_chunks() -> None:
    line = processing_line(status_doc(status="processing"))
    assert "4/4 chunks, 1 failed" in line and line.startswith("processing [")


def test_check_status() -> None:
    assert check_status({"rows_invalid": 0, "errors": {}}) == "completed"
    assert check_status({"rows_invalid": 2, "errors": {"invalid_amount": 2}}) == "completed_with_errors"


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["upload", "f.csv"])
    assert (args.concurrency, args.wait, args.json, args.api) == (8, False, False, None)
    args = build_parser().parse_args(["dev"])
    assert (args.moto_port, args.api_port, args.web_port) == (5000, 8000, 8080)
    args = build_parser().parse_args(["report", "abc", "-o", "out.csv"])
    assert (args.upload_id, args.output) == ("abc", "out.csv")


def test_commands_needing_a_token_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPFLOW_HOME", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    assert main(["abort", "nope", "--api", "http://127.0.0.1:9"], out=out, err=err) == 1
    assert "--token" in err.getvalue()


def test_upload_of_a_missing_file_fails_cleanly(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["upload", str(tmp_path / "missing.csv")], out=io.StringIO(), err=err) == 1
    assert "no such file" in err.getvalue()


def test_check_prints_the_same_summary_as_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "pay.csv"
    path.write_text("documento,valor\n529.982.247-25,10.50\n111.111.111-11,3.00\n")
    out = io.StringIO()
    assert main(["check", str(path), "--json"], out=out, err=io.StringIO()) == 0
    summary = json.loads(out.getvalue())
    assert list(summary) == [
        "upload_id",
        "status",
        "rows_total",
        "rows_valid",
        "rows_invalid",
        "errors",
        "amount_valid",
        "documents",
    ]
    assert summary["upload_id"] == "" and summary["rows_total"] == 2
    assert summary["documents"] == [{"document": "52998224725", "type": "cpf", "rows": 1, "amount": "10.50"}]
    assert summary["status"] == ("completed_with_errors" if summary["rows_invalid"] else "completed")


def test_check_of_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    path.write_text("alpha,beta\n1,2\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", str(path), "--json"], out=out, err=err) == 1
    assert "error" in json.loads(out.getvalue()) and "cannot be checked" in err.getvalue()

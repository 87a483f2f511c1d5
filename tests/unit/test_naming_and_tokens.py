from __future__ import annotations

import pytest

from upflow.core import naming, tokens


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd.csv",
        "a/b.csv",
        "a\\b.csv",
        "nul\x00.csv",
        "x" * 2048 + ".csv",
        "data.txt",
        "",
        "   ",
        None,
        12,
    ],
)
def test_bad_filenames_are_refused(bad: object) -> None:
    with pytest.raises(naming.FilenameError):
        naming.validate_filename(bad, 255)


def test_good_filename_passes_unchanged() -> None:
    assert naming.validate_filename("Relatório Março.CSV", 255) == "Relatório Março.CSV"


@pytest.mark.parametrize(
    ("name", "sanitised"),
    [
        ("Relatório Março.csv", "Relatorio_Marco.csv"),
        ("..hidden.csv", "hidden.csv"),
        ("a  b;c.CSV", "a_b_c.csv"),
        ("日本.csv", "upload.csv"),
    ],
)
def test_sanitised_names_are_ascii_and_separator_free(name: str, sanitised: str) -> None:
    assert naming.sanitise_filename(name) == sanitised


def test_keys_are_generated_under_the_upload_id_and_parse_back() -> None:
    key = naming.object_key("abc123", "../../x.csv")
    assert key == "uploads/abc123/x.csv"
    assert naming.upload_id_from_key(key) == "abc123"
    assert naming.upload_id_from_key("reports/abc123/errors.csv") is None
    assert naming.upload_id_from_key("uploads/abc/def/x.csv") is None


@pytest.mark.parametrize(
    "content_type", ["text/csv", "text/csv; charset=utf-8", "application/vnd.ms-excel", None]
)
def test_csv_content_types_pass(content_type: str | None) -> None:
    naming.validate_content_type(content_type)


def test_other_content_types_are_refused() -> None:
    with pytest.raises(naming.FilenameError):
        naming.validate_content_type("image/png")


SECRET = b"s3cret"


def test_token_round_trip() -> None:
    token = tokens.issue_token(SECRET, "upload-1")
    tokens.check_token(SECRET, "upload-1", token)


def test_token_of_another_upload_is_forbidden() -> None:
    token = tokens.issue_token(SECRET, "upload-1")
    with pytest.raises(tokens.TokenError) as caught:
        tokens.check_token(SECRET, "upload-2", token)
    assert caught.value.status == 403


def test_token_under_another_secret_is_forbidden() -> None:
    with pytest.raises(tokens.TokenError):
        tokens.check_token(SECRET, "upload-1", tokens.issue_token(b"other", "upload-1"))


def test_forged_and_non_ascii_tokens_are_forbidden() -> None:
    for forged in ["x", "é" * 43, tokens.issue_token(SECRET, "upload-1")[:-1] + "A"]:
        with pytest.raises(tokens.TokenError):
            tokens.check_token(SECRET, "upload-1", forged)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_missing_or_malformed_authorization_is_401(header: str | None) -> None:
    with pytest.raises(tokens.TokenError) as caught:
        tokens.bearer_from_header(header)
    assert caught.value.status == 401

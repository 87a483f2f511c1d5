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
NOW = 1_700_000_000
TTL, GRACE = 3600, 86400


def check(token: str, upload_id: str = "upload-1", now: float = NOW, secret: bytes = SECRET) -> int:
    return tokens.check_token(secret, upload_id, token, now=now, ttl_seconds=TTL, grace_seconds=GRACE)


def test_token_round_trip_carries_its_issue_time() -> None:
    token = tokens.issue_token(SECRET, "upload-1", NOW + 0.9)
    assert token.startswith(f"{NOW}.")
    assert check(token) == NOW
    assert tokens.verify_token(SECRET, "upload-1", token) == NOW


def test_token_of_another_upload_is_forbidden() -> None:
    token = tokens.issue_token(SECRET, "upload-1", NOW)
    with pytest.raises(tokens.TokenError) as caught:
        check(token, "upload-2")
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


def test_token_under_another_secret_is_forbidden() -> None:
    with pytest.raises(tokens.TokenError) as caught:
        check(tokens.issue_token(b"other", "upload-1", NOW))
    assert caught.value.status == 403


def test_forged_and_non_ascii_tokens_are_forbidden() -> None:
    genuine = tokens.issue_token(SECRET, "upload-1", NOW)
    issued, mac = genuine.split(".")
    later = f"{int(issued) + 10 * TTL}.{mac}"  # a moved issue time breaks the MAC
    legacy = mac  # the old format (a bare MAC) is no token any more
    for forged in ["x", "é" * 43, genuine[:-1] + ("B" if genuine.endswith("A") else "A"), later, legacy]:
        with pytest.raises(tokens.TokenError) as caught:
            check(forged)
        assert caught.value.status == 403, forged


def test_an_expired_token_is_401_and_renewable_within_the_grace() -> None:
    token = tokens.issue_token(SECRET, "upload-1", NOW)
    assert check(token, now=NOW + TTL - 1) == NOW
    with pytest.raises(tokens.TokenExpired) as caught:
        check(token, now=NOW + TTL)
    expired = caught.value
    assert (expired.status, expired.code, expired.renewable) == (401, "token_expired", True)
    assert (expired.expired_at, expired.renewable_until) == (NOW + TTL, NOW + TTL + GRACE)
    renew = {"now": NOW + TTL + GRACE, "ttl_seconds": TTL, "grace_seconds": GRACE}
    assert tokens.check_renewal(SECRET, "upload-1", token, **renew) == NOW
    renew["now"] += 1
    with pytest.raises(tokens.TokenExpired) as caught:
        tokens.check_renewal(SECRET, "upload-1", token, **renew)
    assert caught.value.renewable is False
    # Forgery is told before age: an old forged token is 403, not "expired".
    with pytest.raises(tokens.TokenError) as forbidden:
        tokens.check_renewal(SECRET, "upload-2", token, **renew)
    assert forbidden.value.status == 403


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_missing_or_malformed_authorization_is_401(header: str | None) -> None:
    with pytest.raises(tokens.TokenError) as caught:
        tokens.bearer_from_header(header)
    assert caught.value.status == 401

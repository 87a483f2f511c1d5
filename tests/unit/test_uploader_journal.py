"""The local resume journal: fingerprints, atomic entries, tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path

from upflow.client.journal import Fingerprint, Journal, JournalEntry, upflow_home


def entry_for(fp: Fingerprint, api: str = "http://api", upload_id: str = "abc123") -> JournalEntry:
    return JournalEntry(fp.path, fp.size, fp.mtime_ns, api, upload_id, "tok", 8, 2, 0.0)


def test_home_from_env() -> None:
    assert upflow_home({"UPFLOW_HOME": "/x/y"}) == Path("/x/y")
    assert upflow_home({}) == Path.home() / ".upflow"


def test_fingerprint_changes_with_size_or_mtime_and_key_with_api(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    fp = Fingerprint.of(path)
    assert fp.path == str(path.resolve()) and fp.size == 3
    assert fp.key("http://a") == fp.key("http://a/")
    assert fp.key("http://a") != fp.key("http://b")
    os.utime(path, ns=(fp.mtime_ns, fp.mtime_ns + 1))
    assert Fingerprint.of(path) != fp
    assert Fingerprint(fp.path, 4, fp.mtime_ns).key("http://a") != fp.key("http://a")


def test_record_lookup_forget(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    fp = Fingerprint.of(path)
    journal = Journal(tmp_path / "home")
    assert journal.lookup(fp, "http://api") is None
    journal.record(entry_for(fp))
    assert journal.lookup(fp, "http://api") == entry_for(fp)
    assert journal.lookup(fp, "http://other") is None
    assert journal.token_for("abc123") == "tok"
    files = list((tmp_path / "home" / "journal").iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    journal.forget(fp, "http://api")
    journal.forget(fp, "http://api")  # idempotent
    assert journal.lookup(fp, "http://api") is None
    assert journal.token_for("abc123") == "tok"  # tokens outlive the resume entry


def test_a_corrupt_or_foreign_entry_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    fp = Fingerprint.of(path)
    journal = Journal(tmp_path / "home")
    journal.record(entry_for(fp))
    (entry_file,) = (tmp_path / "home" / "journal").iterdir()
    entry_file.write_text("{not json")
    assert journal.lookup(fp, "http://api") is None
    doc = {**entry_for(fp).__dict__, "size": 999}
    entry_file.write_text(json.dumps(doc))
    assert journal.lookup(fp, "http://api") is None


def test_token_for_unsafe_ids_cannot_escape(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    journal.remember_token("../../etc/x", "t", "http://api")
    assert journal.token_for("../../etc/x") == "t"
    assert all(p.parent == tmp_path / "home" / "tokens" for p in (tmp_path / "home").rglob("*.json"))

"""The ``upflow`` command.

    upflow upload FILE [--api URL] [--concurrency N] [--wait] [--json]
    upflow status ID [--token T] [--json] [--watch [--interval S]]
    upflow abort ID [--token T]
    upflow report ID [-o FILE] [--token T]
    upflow retry ID [--token T]
    upflow results ID [-o totals.csv | --json] [--token T]
    upflow check FILE [--chunk-size N] [--json] [--report errors.csv]
    upflow dev [--moto-port 5000 --api-port 8000 --web-port 8080 --s3-port 8333 --s3 seaweed|moto]
               [--chunk-workers 2] [--work-dir .upflow]

The API URL comes from ``--api``, else ``$UPFLOW_API``, else
``http://127.0.0.1:8000``. Tokens come from ``--token`` or the local journal
(``$UPFLOW_HOME``, default ``~/.upflow``), which ``upflow upload`` fills.

Output: progress and log lines go to stderr (a bar on a TTY, plain lines
otherwise); results go to stdout (one JSON object with ``--json``).
Exit status: 0 success (also ``completed_with_errors``: the rows' errors are in
the summary), 1 failure (API error, upload failed, processing ``failed``),
2 usage error, 130 interrupted (the upload can be resumed by running again).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from upflow.client.api import (
    DEFAULT_API,
    ApiClient,
    ApiError,
    RequestsTransport,
    TransportError,
    UploadStatus,
)
from upflow.client.journal import Journal, upflow_home
from upflow.client.progress import Progress, bar, format_bytes, format_duration

FINAL_PROCESSING_STATES = frozenset({"completed", "completed_with_errors", "failed"})
SUMMARY_FIELDS = ("upload_id", "status", "rows_total", "rows_valid", "rows_invalid", "errors", "amount_valid")
# Columns of a document's consolidated total: the results API's, the CSV's, ``check``'s.
TOTALS_FIELDS = ("document", "type", "rows", "amount")


class CliError(Exception):
    pass


# --- pure helpers -------------------------------------------------------------------


def api_url(explicit: str | None, env: Mapping[str, str]) -> str:
    return (explicit or env.get("UPFLOW_API") or DEFAULT_API).rstrip("/")


def summary_of(status: UploadStatus) -> dict[str, Any]:
    """The ``summary`` object of a status document, with the design's fields in order."""
    summary = dict(status.summary)
    summary.setdefault("upload_id", status.upload_id)
    summary.setdefault("status", status.status)
    return {name: summary.get(name) for name in SUMMARY_FIELDS} | {
        k: v for k, v in summary.items() if k not in SUMMARY_FIELDS
    }


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        f"upload_id:    {summary.get('upload_id') or '-'}",
        f"status:       {summary.get('status')}",
        f"rows_total:   {summary.get('rows_total')}",
        f"rows_valid:   {summary.get('rows_valid')}",
        f"rows_invalid: {summary.get('rows_invalid')}",
        f"amount_valid: {summary.get('amount_valid')}",
    ]
    errors = summary.get("errors") or {}
    if errors:
        lines.append("errors:")
        lines.extend(f"  {code}: {count}" for code, count in sorted(errors.items()))
    return lines


def processing_line(status: UploadStatus) -> str:
    total = status.chunks_total
    done = status.chunks_done + status.chunks_failed
    fraction = done / total if total else 0.0
    failed = f", {status.chunks_failed} failed" if status.chunks_failed else ""
    return f"processing [{bar(fraction)}] {status.status} {done}/{total} chunks{failed}"


def amount_text(amount: Decimal) -> str:
    """Two-place decimal text ("1234.50"), as the API writes amounts."""
    return f"{amount.quantize(Decimal('0.01')):f}"


def totals_line(total: Mapping[str, Any]) -> str:
    """One row of the totals table (documents are at most 14 characters, CNPJs)."""
    return f"{total['document']!s:<14}  {total['type']!s:<4}  {total['rows']!s:>9}  {total['amount']!s:>18}"


def totals_lines(totals: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The totals table: a header, then one line per document, as they come."""
    yield totals_line({name: name for name in TOTALS_FIELDS})
    for total in totals:
        yield totals_line(total)


def check_status(summary: Mapping[str, Any]) -> str:
    invalid = summary.get("rows_invalid") or 0
    return "completed_with_errors" if invalid or summary.get("errors") else "completed"


# --- commands -----------------------------------------------------------------------


class Context:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO, env: Mapping[str, str]) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.env = env
        self.api_url = api_url(getattr(args, "api", None), env)
        self.journal = Journal(upflow_home(env))
        self._client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            concurrency = int(getattr(self.args, "concurrency", 8) or 8)
            self._client = ApiClient(self.api_url, RequestsTransport(max_connections=concurrency + 4))
        return self._client

    def token(self, upload_id: str) -> str:
        token: str | None = getattr(self.args, "token", None) or self.journal.token_for(upload_id)
        if not token:
            raise CliError(f"no token for upload {upload_id}: pass --token (the journal has none)")
        return token

    def log(self, text: str) -> None:
        if not getattr(self.args, "quiet", False):
            self.err.write(text + "\n")
            self.err.flush()

    @property
    def tty(self) -> bool:
        return not getattr(self.args, "plain", False) and self.err.isatty()

    def emit_json(self, doc: Any) -> None:
        self.out.write(json.dumps(doc, sort_keys=False) + "\n")
        self.out.flush()


def cmd_upload(ctx: Context) -> int:
    from upflow.client.uploader import UploadOptions, UploadTarget, throttle_from_env, upload_file

    args = ctx.args
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    options = UploadOptions(concurrency=args.concurrency, throttle_bps=throttle_from_env(ctx.env))
    client = ctx.client

    def on_target(target: UploadTarget) -> None:
        verb = "resuming" if target.resumed else "started"
        ctx.log(
            f"upload {target.upload_id} {verb}: {target.plan.part_count} parts of "
            f"{format_bytes(target.plan.part_size)}"
        )
        if not args.json:
            ctx.out.write(f"upload_id: {target.upload_id}\n")
            ctx.out.flush()

    def make_progress(total: int) -> Progress:
        return Progress(total, ctx.err, tty=ctx.tty, label="upload", enabled=not args.quiet)

    result = upload_file(
        path,
        client,
        client.transport,
        ctx.journal,
        ctx.api_url,
        options,
        make_progress,
        on_target=on_target,
        log=ctx.log,
    )
    rate = result.bytes_sent / result.elapsed if result.elapsed > 0 else 0.0
    ctx.log(
        f"uploaded {format_bytes(result.size)}: sent {result.parts_sent}/{result.part_count} parts "
        f"({format_bytes(result.bytes_sent)}) in {format_duration(result.elapsed)} at {format_bytes(rate)}/s"
    )
    if not args.wait:
        if args.json:
            ctx.emit_json(
                {
                    "upload_id": result.upload_id,
                    "status": "uploaded",
                    "key": result.key,
                    "size": result.size,
                    "etag": result.etag,
                    "parts_sent": result.parts_sent,
                    "part_count": result.part_count,
                }
            )
        else:
            ctx.out.write(f"status: uploaded\nkey: {result.key}\nsize: {result.size}\n")
        return 0
    final = wait_for_processing(ctx, result.upload_id, result.token)
    return report_final(ctx, final)


def wait_for_processing(
    ctx: Context,
    upload_id: str,
    token: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> UploadStatus:
    interval = float(getattr(ctx.args, "poll_interval", 1.0))
    deadline = (
        time.monotonic() + float(getattr(ctx.args, "timeout", 0) or 0)
        if getattr(ctx.args, "timeout", 0)
        else None
    )
    last_line = ""
    quiet = getattr(ctx.args, "quiet", False)
    while True:
        status = ctx.client.status(upload_id, token)
        line = processing_line(status)
        if not quiet and line != last_line:
            if ctx.tty:
                ctx.err.write("\r\033[K" + line)
            else:
                ctx.err.write(line + "\n")
            ctx.err.flush()
            last_line = line
        if status.status in FINAL_PROCESSING_STATES or status.status == "aborted":
            if not quiet and ctx.tty:
                ctx.err.write("\n")
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"upload {upload_id} still {status.status} after --timeout")
        sleep(interval)


def report_final(ctx: Context, status: UploadStatus) -> int:
    summary = summary_of(status)
    if ctx.args.json:
        ctx.emit_json(summary)
    else:
        ctx.out.write("\n".join(summary_lines(summary)) + "\n")
        if status.error:
            ctx.out.write(f"error: {status.error.get('code')}: {status.error.get('message')}\n")
    return 1 if status.status in ("failed", "aborted") else 0


def cmd_status(ctx: Context) -> int:
    if ctx.args.watch:
        return watch_status(ctx)
    status = ctx.client.status(ctx.args.upload_id, ctx.token(ctx.args.upload_id))
    if ctx.args.json:
        ctx.emit_json(status.raw)
        return 0
    raw = status.raw
    ctx.out.write(
        f"upload_id: {status.upload_id}\nfilename:  {raw.get('filename')}\nstatus:    {status.status}\n"
        f"size:      {status.size} ({format_bytes(status.size)})\n"
        f"parts:     {status.part_count} × {format_bytes(status.part_size)}\n"
        f"chunks:    {status.chunks_done}/{status.chunks_total} done, {status.chunks_failed} failed\n"
    )
    if status.status in FINAL_PROCESSING_STATES:
        ctx.out.write("\n".join(summary_lines(summary_of(status))[2:]) + "\n")
    if status.error:
        ctx.out.write(f"error:     {status.error.get('code')}: {status.error.get('message')}\n")
    return 0


def watch_status(ctx: Context, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """``status --watch``: frames every ``--interval`` seconds until the upload ends (exit 0 when
    its rows were processed, 1 when it failed or was aborted) or Ctrl-C (130)."""
    from upflow.client import watch

    if ctx.args.interval <= 0:
        raise CliError("--interval must be positive")
    upload_id = ctx.args.upload_id
    token = ctx.token(upload_id)
    render = (lambda doc: json.dumps(doc) + "\n") if ctx.args.json else None
    try:
        final = watch.watch(
            lambda: ctx.client.status(upload_id, token),
            ctx.out,
            interval=ctx.args.interval,
            clear=ctx.out.isatty() and not ctx.args.json,
            sleep=sleep,
            render=render,
        )
    except KeyboardInterrupt:
        ctx.err.write(f"\nstopped watching upload {upload_id}\n")
        return 130
    return watch.exit_code(final)


def cmd_abort(ctx: Context) -> int:
    answer = ctx.client.abort(ctx.args.upload_id, ctx.token(ctx.args.upload_id))
    ctx.out.write(f"{answer.get('upload_id')} {answer.get('status')}\n")
    return 0


def cmd_report(ctx: Context) -> int:
    upload_id = ctx.args.upload_id
    dest = Path(ctx.args.output) if ctx.args.output else Path(f"{upload_id}-errors.csv")
    written = ctx.client.download_error_report(upload_id, ctx.token(upload_id), dest)
    ctx.log(f"wrote {format_bytes(written)} to {dest}")
    ctx.out.write(f"{dest}\n")
    return 0


def cmd_retry(ctx: Context) -> int:
    upload_id = ctx.args.upload_id
    answer = ctx.client.retry(upload_id, ctx.token(upload_id))
    ctx.out.write(f"{answer.get('upload_id')} requeued {answer.get('requeued')} chunks\n")
    if ctx.args.wait:
        return report_final(ctx, wait_for_processing(ctx, upload_id, ctx.token(upload_id)))
    return 0


def cmd_check(ctx: Context) -> int:
    from upflow.core.checker import check_file
    from upflow.definition import Limits

    path = Path(ctx.args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    limits = Limits()
    chunk_size = ctx.args.chunk_size or limits.chunk_size
    from upflow.core.detect import FormatError
    from upflow.core.report import NoReport, ReportWriter

    report_path = Path(ctx.args.report) if ctx.args.report else None
    try:
        if report_path is None:
            result = check_file(path, chunk_size, limits, report=NoReport())
        else:
            # The pipeline's error report, written row by row as the chunks are checked.
            with report_path.open("wb") as report_file:
                report = ReportWriter(report_file)
                result = check_file(path, chunk_size, limits, report=report)
            ctx.log(f"wrote {report.rows} error rows to {report_path}")
    except FormatError as error:
        if report_path is not None:
            report_path.unlink(missing_ok=True)
        if ctx.args.json:
            ctx.emit_json(error.to_json())
        ctx.err.write(f"upflow: {path} cannot be checked: {error.code}: {error.message}\n")
        return 1
    summary: dict[str, Any] = dict(result.summary.to_json("", "completed"))
    status = check_status(summary)
    if status != "completed":
        summary = dict(result.summary.to_json("", status))
    # The per-document totals the pipeline consolidates, in document order (the results' order).
    documents = [
        {"document": t.document, "type": t.doc_type, "rows": t.rows, "amount": amount_text(t.amount)}
        for t in sorted(result.totals, key=lambda total: total.document)
    ]
    if ctx.args.json:
        ctx.emit_json({**summary, "documents": documents})
    else:
        ctx.out.write("\n".join(summary_lines(summary)) + "\n")
        ctx.out.write(f"\ndocuments:    {len(documents)}\n")
        if documents:
            ctx.out.write("\n".join(totals_lines(documents)) + "\n")
    return 0


def cmd_results(ctx: Context) -> int:
    """The upload's totals per document: the CSV (``-o``), one JSON object, or a table."""
    upload_id = ctx.args.upload_id
    token = ctx.token(upload_id)
    try:
        if ctx.args.output:
            dest = Path(ctx.args.output)
            written = ctx.client.download_results(upload_id, token, dest)
            ctx.log(f"wrote {format_bytes(written)} to {dest}")
            ctx.out.write(f"{dest}\n")
            return 0
        pages = ctx.client.iter_results(upload_id, token)
        first = next(pages)  # a refusal (not ready, bad token) comes before anything is printed
        documents = (total for page in itertools.chain([first], pages) for total in page.documents)
        count = _write_json(ctx, upload_id, documents) if ctx.args.json else _write_table(ctx, documents)
    except ApiError as error:
        if error.error != "results_not_ready":
            raise
        raise CliError(
            f"upload {upload_id} has no results yet: {error.message} "
            f"(follow it with `upflow status {upload_id}`)"
        ) from error
    ctx.log(f"{count} of {first.documents_total} documents")
    return 0


def _write_json(ctx: Context, upload_id: str, documents: Iterable[Mapping[str, Any]]) -> int:
    """``{"upload_id": …, "documents": […]}`` written document by document: one JSON object
    however many documents there are, without holding them all."""
    ctx.out.write(f'{{"upload_id": {json.dumps(upload_id)}, "documents": [')
    count = 0
    for total in documents:
        ctx.out.write((", " if count else "") + json.dumps({name: total[name] for name in TOTALS_FIELDS}))
        count += 1
    ctx.out.write("]}\n")
    ctx.out.flush()
    return count


def _write_table(ctx: Context, documents: Iterable[Mapping[str, Any]]) -> int:
    count = -1  # the header
    for line in totals_lines(documents):
        ctx.out.write(line + "\n")
        count += 1
    ctx.out.flush()
    return count


def cmd_dev(ctx: Context) -> int:
    from upflow.local.stack import run_dev

    return run_dev(
        moto_port=ctx.args.moto_port,
        api_port=ctx.args.api_port,
        web_port=ctx.args.web_port,
        host="127.0.0.1",
        chunk_workers=ctx.args.chunk_workers,
        s3=ctx.args.s3,
        s3_port=ctx.args.s3_port,
        work_dir=ctx.args.work_dir,
    )


# --- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upflow", description="Upload huge CSVs to S3 and follow their processing."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_api(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api", help=f"API base URL (default $UPFLOW_API or {DEFAULT_API})")

    def with_token(p: argparse.ArgumentParser) -> None:
        p.add_argument("--token", help="the upload's bearer token (default: from the local journal)")

    def with_output(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
        p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")

    def with_wait(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", action="store_true", help="follow processing until it ends")
        p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between status polls")
        p.add_argument("--timeout", type=float, default=0.0, help="give up waiting after this many seconds")

    upload = sub.add_parser(
        "upload",
        help="upload (or resume uploading) a CSV file",
        description="Upload FILE by S3 multipart upload; run again after an interruption to resume. "
        "Env UPFLOW_THROTTLE_BPS caps the upload rate (bytes/s, for tests).",
    )
    upload.add_argument("file")
    with_api(upload)
    upload.add_argument("--concurrency", "-c", type=int, default=8, help="parts in flight (default 8)")
    upload.add_argument("--json", action="store_true", help="print the result (or --wait summary) as JSON")
    with_wait(upload)
    with_output(upload)
    upload.set_defaults(handler=cmd_upload)

    status = sub.add_parser("status", help="show an upload's status")
    status.add_argument("upload_id")
    with_api(status)
    with_token(status)
    status.add_argument("--json", action="store_true", help="print the whole status document")
    status.add_argument(
        "--watch",
        action="store_true",
        help="follow the upload live (chunks by state, rows per second, the slowest chunks) until it "
        "ends: exit 0 when completed, 1 when failed or aborted; with --json one document per line",
    )
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    status.set_defaults(handler=cmd_status)

    abort = sub.add_parser("abort", help="abort an upload")
    abort.add_argument("upload_id")
    with_api(abort)
    with_token(abort)
    abort.set_defaults(handler=cmd_abort)

    report = sub.add_parser("report", help="download an upload's error report")
    report.add_argument("upload_id")
    report.add_argument("-o", "--output", help="where to write it (default <ID>-errors.csv)")
    with_api(report)
    with_token(report)
    report.add_argument("--quiet", "-q", action="store_true")
    report.set_defaults(handler=cmd_report)

    retry = sub.add_parser("retry", help="requeue an upload's failed chunks")
    retry.add_argument("upload_id")
    with_api(retry)
    with_token(retry)
    retry.add_argument("--json", action="store_true", help="with --wait: print the summary as JSON")
    with_wait(retry)
    with_output(retry)
    retry.set_defaults(handler=cmd_retry)

    results = sub.add_parser(
        "results",
        help="an upload's totals per document",
        description="Print the consolidated totals per document (CPF/CNPJ) of a processed upload, "
        "in document order: a table, or one JSON object with --json; -o downloads the CSV instead.",
    )
    results.add_argument("upload_id")
    shape = results.add_mutually_exclusive_group()
    shape.add_argument("-o", "--output", help="download the totals CSV to this file (e.g. totals.csv)")
    shape.add_argument("--json", action="store_true", help="print {upload_id, documents: [...]} as JSON")
    with_api(results)
    with_token(results)
    results.add_argument("--quiet", "-q", action="store_true")
    results.set_defaults(handler=cmd_results)

    check = sub.add_parser("check", help="validate a CSV file locally (offline)")
    check.add_argument("file")
    check.add_argument("--chunk-size", type=int, default=0, help="bytes per chunk (default: the product's)")
    check.add_argument(
        "--json", action="store_true", help="print the summary and the totals per document as JSON"
    )
    check.add_argument(
        "--report", metavar="FILE", help="write the error report (the pipeline's CSV, at file lines) to FILE"
    )
    check.set_defaults(handler=cmd_check)

    dev = sub.add_parser("dev", help="run the whole stack locally (SeaweedFS, moto, API, web)")
    dev.add_argument("--moto-port", type=int, default=5000)
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--web-port", type=int, default=8080)
    dev.add_argument("--s3-port", type=int, default=8333, help="SeaweedFS's S3 port")
    dev.add_argument(
        "--s3",
        choices=("seaweed", "moto"),
        default=None,
        help="the local S3: SeaweedFS (default; objects on disk, signatures and checksums checked) or moto",
    )
    dev.add_argument("--chunk-workers", type=int, default=2, help="chunk pump processes (Lambda instances)")
    dev.add_argument(
        "--work-dir", type=Path, default=None, help="where logs/ and SeaweedFS's s3/ go (default: .upflow)"
    )
    dev.set_defaults(handler=cmd_dev)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args, out or sys.stdout, err or sys.stderr, os.environ if env is None else env)
    handler: Callable[[Context], int] = args.handler
    try:
        return handler(ctx)
    except KeyboardInterrupt:
        ctx.err.write("\ninterrupted; run the same command again to resume\n")
        return 130
    except ApiError as error:
        field = f" (field {error.field})" if error.field else ""
        ctx.err.write(f"upflow: API error {error.status} {error.error}: {error.message}{field}\n")
        return 1
    except (TransportError, CliError, OSError) as error:
        ctx.err.write(f"upflow: {error}\n")
        return 1
    except Exception as error:
        from upflow.client.uploader import UploadFailed

        if isinstance(error, UploadFailed):
            ctx.err.write(f"upflow: upload failed: {error}\n")
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

import { useState } from 'react'
import { describeError, type ApiClient } from '../lib/api'
import { formatBRL, formatBytes, formatCount } from '../lib/format'
import { canRetryChunks, errorCodeLabel, statusView } from '../lib/status'
import type { StatusDocument } from '../lib/types'
import { ChunkGrid, ChunkTimingsLine } from './ChunkGrid'
import { Alert, Badge, Button, Card, CardTitle, Stat } from './ui'

export function StatusPanel({
  api,
  uploadId,
  token,
  doc,
  pollError,
  onRetried,
}: {
  api: ApiClient
  uploadId: string
  token: string
  doc: StatusDocument | null
  pollError: string | null
  onRetried: () => void
}) {
  const [actionError, setActionError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [retryNote, setRetryNote] = useState<string | null>(null)
  const view = doc ? statusView(doc.status) : null

  async function downloadReport() {
    setActionError(null)
    try {
      const { url } = await api.errorReport(uploadId, token)
      window.location.assign(url)
    } catch (error) {
      setActionError(describeError(error))
    }
  }

  async function retryChunks() {
    setActionError(null)
    setBusy(true)
    try {
      const { requeued } = await api.retry(uploadId, token)
      setRetryNote(`${requeued} chunk${requeued === 1 ? '' : 's'} sent back for processing.`)
      onRetried()
    } catch (error) {
      setActionError(describeError(error))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Card aria-labelledby="status-title" data-testid="status-panel">
      <CardTitle id="status-title">Processing {doc ? `“${doc.filename}”` : ''}</CardTitle>
      <div aria-live="polite" aria-atomic="true" className="mb-4 flex flex-wrap items-center gap-3">
        {view && doc ? (
          <>
            <Badge tone={view.tone} className="text-sm">
              <span data-testid="status-text" data-status={doc.status}>
                {view.label}
              </span>
            </Badge>
            <span className="text-sm text-slate-600">{view.description}</span>
          </>
        ) : (
          <span className="text-sm text-slate-600" data-testid="status-text" data-status="">
            Loading status…
          </span>
        )}
      </div>
      {pollError && (
        <Alert tone="warning" testId="poll-error">
          {pollError}
        </Alert>
      )}
      {doc?.error && (
        <Alert tone="danger" title="Processing error" testId="error-message">
          {doc.error.message}
        </Alert>
      )}
      {doc && (
        <>
          <dl className="my-4 grid grid-cols-2 gap-3 md:grid-cols-[1fr_1fr_1fr_1.5fr]">
            <Stat
              label="Chunks"
              testId="chunks"
              value={`${formatCount(doc.chunks.done)} / ${formatCount(doc.chunks.total)}${
                doc.chunks.failed ? ` (${formatCount(doc.chunks.failed)} failed)` : ''
              }`}
            />
            <Stat label="Valid rows" testId="rows-valid" value={formatCount(doc.summary?.rows_valid ?? 0)} />
            <Stat label="Invalid rows" testId="rows-invalid" value={formatCount(doc.summary?.rows_invalid ?? 0)} />
            <Stat label="Total amount (valid)" testId="amount-valid" value={formatBRL(doc.summary?.amount_valid ?? '0')} />
          </dl>
          {doc.chunks.grid !== undefined && <ChunkGrid grid={doc.chunks.grid} total={doc.chunks.total} />}
          <ChunkTimingsLine timings={doc.chunks.timings} slowest={doc.chunks.slowest} />
          <p className="mb-4 text-xs text-slate-500">
            {formatBytes(doc.size)} · {doc.format ? `${doc.format.encoding}, delimiter “${doc.format.delimiter}”` : 'format pending'} ·
            upload {doc.upload_id}
          </p>
          {doc.summary && Object.keys(doc.summary.errors ?? {}).length > 0 && (
            <ul className="mb-4 flex flex-wrap gap-2" aria-label="Errors by kind">
              {Object.entries(doc.summary.errors).map(([code, n]) => (
                <li key={code}>
                  <Badge tone="danger">
                    {errorCodeLabel(code)}: {formatCount(n)}
                  </Badge>
                </li>
              ))}
            </ul>
          )}
          {doc.first_errors.length > 0 && (
            <div className="mb-4 max-h-96 overflow-auto rounded-md border border-slate-200">
              <table className="w-full text-left text-sm" data-testid="first-errors">
                <caption className="bg-slate-50 px-3 py-2 text-left text-sm font-medium text-slate-700">
                  First errors
                </caption>
                <thead className="bg-slate-100 text-xs uppercase text-slate-600">
                  <tr>
                    <th scope="col" className="px-3 py-2">Line</th>
                    <th scope="col" className="px-3 py-2">Column</th>
                    <th scope="col" className="px-3 py-2">Problem</th>
                    <th scope="col" className="px-3 py-2">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {doc.first_errors.map((e, i) => (
                    <tr key={`${e.line}-${i}`} className="border-t border-slate-100">
                      <td className="px-3 py-1.5 tabular-nums">{e.line}</td>
                      <td className="px-3 py-1.5">{e.column ?? '—'}</td>
                      <td className="px-3 py-1.5">{e.message || errorCodeLabel(e.code)}</td>
                      <td className="px-3 py-1.5 font-mono text-xs">{e.value ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div className="flex flex-wrap gap-3">
            {doc.report_key && (
              <Button variant="secondary" onClick={downloadReport} data-testid="download-report">
                Download error report
              </Button>
            )}
            {canRetryChunks(doc) && (
              <Button variant="primary" onClick={retryChunks} disabled={busy} data-testid="retry-chunks">
                Retry failed chunks
              </Button>
            )}
          </div>
          {retryNote && (
            <p className="mt-3 text-sm text-slate-600" role="status">
              {retryNote}
            </p>
          )}
          {actionError && (
            <div className="mt-3">
              <Alert testId="error-message">{actionError}</Alert>
            </div>
          )}
        </>
      )}
    </Card>
  )
}

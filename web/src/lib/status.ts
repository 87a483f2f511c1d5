// Upload status codes of the status document → words, tone and what to do next.
import type { StatusDocument, UploadStatus } from './types'

export type Tone = 'neutral' | 'progress' | 'success' | 'warning' | 'danger'

export interface StatusView {
  label: string
  description: string
  tone: Tone
  /** No further change will come by itself: polling can stop. */
  terminal: boolean
}

const VIEWS: Record<UploadStatus, StatusView> = {
  uploading: {
    label: 'Uploading',
    description: 'The file is being sent to storage.',
    tone: 'progress',
    terminal: false,
  },
  uploaded: {
    label: 'Uploaded',
    description: 'The file is stored; validation starts in a moment.',
    tone: 'progress',
    terminal: false,
  },
  processing: {
    label: 'Processing',
    description: 'Rows are being validated and consolidated.',
    tone: 'progress',
    terminal: false,
  },
  completed: {
    label: 'Completed',
    description: 'Every row was valid and has been consolidated.',
    tone: 'success',
    terminal: true,
  },
  completed_with_errors: {
    label: 'Completed with errors',
    description: 'Valid rows were consolidated; some rows were rejected (see the errors below).',
    tone: 'warning',
    terminal: true,
  },
  failed: {
    label: 'Failed',
    description: 'Processing stopped. You can retry the failed chunks.',
    tone: 'danger',
    terminal: true,
  },
  aborted: {
    label: 'Cancelled',
    description: 'The upload was cancelled and its parts were deleted.',
    tone: 'neutral',
    terminal: true,
  },
}

export function statusView(status: string): StatusView {
  return (
    VIEWS[status as UploadStatus] ?? {
      label: status.replace(/_/g, ' '),
      description: 'Unknown status.',
      tone: 'neutral',
      terminal: false,
    }
  )
}

/** Keep polling unless the status is final *and* no chunk is still in flight. */
export function shouldKeepPolling(doc: Pick<StatusDocument, 'status' | 'chunks'>): boolean {
  if (!statusView(doc.status).terminal) return true
  const { total, done, failed } = doc.chunks
  // A retry moves a failed upload back to processing; chunks still pending mean work goes on.
  return doc.status === 'failed' && total > 0 && done + failed < total
}

export function canRetryChunks(doc: Pick<StatusDocument, 'status' | 'chunks'>): boolean {
  return doc.chunks.failed > 0 && doc.status !== 'uploading' && doc.status !== 'aborted'
}

const ERROR_WORDS: Record<string, string> = {
  invalid_document: 'Invalid CPF/CNPJ',
  invalid_amount: 'Invalid amount',
  missing_document: 'Missing document',
  missing_amount: 'Missing amount',
  wrong_column_count: 'Wrong number of columns',
  row_too_long: 'Row too long',
  invalid_date: 'Invalid date',
  invalid_encoding: 'Invalid encoding',
}

/** An error code ("invalid_document") → "Invalid CPF/CNPJ"; unknown codes are humanised. */
export function errorCodeLabel(code: string): string {
  const known = ERROR_WORDS[code]
  if (known) return known
  const words = code.replace(/_/g, ' ').trim()
  return words.charAt(0).toUpperCase() + words.slice(1)
}

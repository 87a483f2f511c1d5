// Upload status codes of the status document → words, tone and what to do next.
import { formatDuration } from './format'
import type { ChunkState, StatusDocument, UploadStatus } from './types'

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

/** The chunk states in the order the grid's legend lists them. */
export const CHUNK_STATES: readonly ChunkState[] = ['pending', 'processing', 'completed', 'failed']

/** The status document's grid alphabet (docs/design.md, "HTTP API"). */
const GRID_CODES: Record<string, ChunkState> = { P: 'pending', R: 'processing', C: 'completed', F: 'failed' }

/** Most cells the page draws: an upload has at most 10,000 chunks. */
export const MAX_GRID_CELLS = 10_000

/**
 * The status document's `chunks.grid` ("CCRPF…", one character per chunk) → one state per chunk.
 * With `total`, the list has exactly that many cells (missing ones are pending, extra ones
 * dropped); a character outside the alphabet is pending too. Never more than MAX_GRID_CELLS.
 */
export function parseChunkGrid(grid: string, total?: number): ChunkState[] {
  const length = Math.min(MAX_GRID_CELLS, Math.max(0, total ?? grid.length))
  const states: ChunkState[] = new Array<ChunkState>(length)
  for (let index = 0; index < length; index++) states[index] = GRID_CODES[grid.charAt(index)] ?? 'pending'
  return states
}

/** How many chunks are in each state. */
export function countChunkStates(states: readonly ChunkState[]): Record<ChunkState, number> {
  const counts: Record<ChunkState, number> = { pending: 0, processing: 0, completed: 0, failed: 0 }
  for (const state of states) counts[state]++
  return counts
}

/** The words of a state for people ("processing" → "Processing"). */
export function chunkStateLabel(state: ChunkState): string {
  return state.charAt(0).toUpperCase() + state.slice(1)
}

/** A chunk's seconds: "0,42 s" below a minute (pt-BR decimals), then "3 min 05 s". */
export function formatChunkSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—'
  if (seconds >= 60) return formatDuration(seconds)
  return `${seconds.toFixed(seconds < 10 ? 2 : 1).replace('.', ',')} s`
}

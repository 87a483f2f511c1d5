// The HTTP API contract of docs/design.md, as TypeScript types.

export interface CreateUploadResponse {
  upload_id: string
  key: string
  part_size: number
  part_count: number
  token: string
  expires_at: string
  checksum_algorithm?: 'CRC32' | null
  /** URLs of the parts asked for in `sign` (a head start), or null */
  signed?: SignPartsResponse | null
}

/** Parts to sign together with POST /uploads: their checksums, for parts of `part_size` */
export interface SignRequest {
  part_size: number
  part_numbers: number[]
  checksums?: Record<string, string>
}

/** The part plan the server gives a file of this size (POST /preview?size=N) */
export interface PartPlan {
  part_size: number
  part_count: number
}

export interface SignPartsResponse {
  urls: Record<string, string>
  /** Headers the URL was signed with (our API adds them; optional in the contract). */
  headers?: Record<string, Record<string, string>>
  expires_at: string
}

export interface ListedPart {
  part_number: number
  size: number
  etag: string
  checksum_crc32?: string | null
}

export interface CompleteResponse {
  upload_id: string
  status: 'uploaded'
  key: string
  size: number
  etag: string
}

export type UploadStatus =
  | 'uploading'
  | 'uploaded'
  | 'aborted'
  | 'processing'
  | 'completed'
  | 'completed_with_errors'
  | 'failed'

export interface FirstError {
  line: number
  column: string | null
  code: string
  message: string
  value?: string | null
}

export interface StatusDocument {
  upload_id: string
  key: string
  filename: string
  size: number
  part_size: number
  part_count: number
  status: UploadStatus
  created_at: string
  updated_at: string
  error: { code: string; message: string } | null
  format: { encoding: string; delimiter: string; header: string[] } | null
  /** total/done/failed: the upload's counters; the rest, the chunks' view (absent from an older API) */
  chunks: { total: number; done: number; failed: number } & Partial<ChunkView>
  summary: {
    upload_id?: string
    status?: string
    rows_total: number
    rows_valid: number
    rows_invalid: number
    errors: Record<string, number>
    amount_valid: string
  } | null
  first_errors: FirstError[]
  report_key: string | null
  /** how many distinct documents were consolidated; present once the results exist */
  documents_total?: number
  /** the largest documents by amount (up to 10), with the results */
  top_documents?: DocumentTotal[]
}

/** A chunk's state (docs/design.md, "State machines"). */
export type ChunkState = 'pending' | 'processing' | 'completed' | 'failed'

/** Seconds per completed chunk and rows per second; null until a chunk completed. */
export interface ChunkTimings {
  chunks: number
  min_seconds: number
  median_seconds: number
  max_seconds: number
  total_seconds: number
  elapsed_seconds: number
  rows: number
  /** rows of the timed chunks over the time from the first start to the last finish */
  rows_per_second: number | null
  /** one worker's rate: rows over the chunks' summed seconds */
  rows_per_chunk_second: number | null
}

/** The chunks of one upload as GET /uploads/{id} answers them (docs/design.md, "HTTP API"). */
export interface ChunkView {
  by_state: Record<ChunkState, number>
  /** one character per chunk, in chunk order: P pending, R processing, C completed, F failed */
  grid: string
  timings: ChunkTimings | null
  /** the slowest completed chunks, slowest first (up to 10) */
  slowest: { index: number; seconds: number; rows: number; attempts: number }[]
  /** the chunks processing longest, with the seconds so far (up to 10) */
  running: { index: number; seconds: number; attempts: number }[]
  /** failed chunks by index, with their last error (up to 10) */
  failures: { index: number; attempts: number; error: string }[]
}

/** One document's consolidated total: `amount` is exact decimal text ("1234.50"). */
export interface DocumentTotal {
  document: string
  type: 'cpf' | 'cnpj'
  rows: number
  amount: string
}

/** A presigned GET of the totals CSV. */
export interface ResultsLink {
  url: string
  expires_at: string
}

/** GET /uploads/{id}/results */
export interface ResultsPage {
  upload_id: string
  documents: DocumentTotal[]
  next_cursor: string | null
  documents_total: number
  download: ResultsLink
}

export interface PreviewRow {
  line: number
  values: string[]
  valid: boolean
  errors: { code: string; column: string | null; message: string }[]
}

export interface PreviewResponse {
  encoding: string
  delimiter: string
  header: string[]
  columns: { document: string; amount: string; name?: string | null; date?: string | null }
  rows: PreviewRow[]
  /** present when the preview was asked with the file's size */
  upload?: PartPlan
}

export interface ErrorBody {
  error: string
  message: string
  field?: string
}

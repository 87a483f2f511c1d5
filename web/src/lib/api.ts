// The upflow API client: one method per route of docs/design.md, and the
// mapping of every failure (HTTP error body, network failure, garbage) to an
// ApiError whose `message` is words a person can read.
import type {
  CompleteResponse,
  CreateUploadResponse,
  ErrorBody,
  ListedPart,
  PreviewResponse,
  ResultsPage,
  SignPartsResponse,
  SignRequest,
  StatusDocument,
} from './types'

/**
 * A part as POST /uploads/{id}/complete takes it. `checksum_crc32` (base64, as signed for
 * its PUT) is needed for a CRC32 upload on an S3 whose ListParts does not list part
 * checksums (SeaweedFS): S3 wants every part's checksum at complete.
 */
export interface CompletedPart {
  part_number: number
  etag: string
  checksum_crc32?: string
}

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly field: string | undefined

  constructor(status: number, code: string, message: string, field?: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.field = field
  }

  /** 5xx, 429, network: worth trying again. 4xx: the request itself is wrong. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500
  }
}

const STATUS_WORDS: Record<number, string> = {
  400: 'The request was not accepted',
  401: 'This upload needs its token again (sign-in missing or garbled)',
  403: 'This upload belongs to someone else, or its token is no longer valid',
  404: 'The upload service does not know this upload',
  409: 'The upload is not in a state that allows this',
  413: 'The file is too large',
  422: 'The file cannot be used',
  429: 'Too many requests; slowing down',
}

function isErrorBody(value: unknown): value is ErrorBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { error?: unknown }).error === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  )
}

/** An HTTP answer that is not 2xx → ApiError with the body's `message` when there is one. */
export function errorFromResponse(status: number, bodyText: string): ApiError {
  let parsed: unknown = null
  try {
    parsed = bodyText ? JSON.parse(bodyText) : null
  } catch {
    parsed = null
  }
  if (isErrorBody(parsed)) {
    const field = typeof parsed.field === 'string' ? parsed.field : undefined
    return new ApiError(status, parsed.error, parsed.message, field)
  }
  const words =
    STATUS_WORDS[status] ?? (status >= 500 ? 'The upload service had a problem; try again shortly' : `HTTP ${status}`)
  return new ApiError(status, `http_${status}`, `${words} (HTTP ${status}).`)
}

/** Whatever was thrown → a sentence for the page. Never raw JSON. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message
  if (error instanceof DOMException && error.name === 'AbortError') return 'The request was cancelled.'
  if (error instanceof Error && error.message) return error.message
  return 'Something went wrong.'
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>

export class ApiClient {
  readonly baseUrl: string
  private readonly fetchImpl: FetchLike

  constructor(baseUrl: string, fetchImpl?: FetchLike) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.fetchImpl = fetchImpl ?? ((input, init) => globalThis.fetch(input, init))
  }

  private async request<T>(
    method: string,
    path: string,
    opts: { token?: string; json?: unknown; body?: BodyInit; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {}
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`
    let body: BodyInit | undefined = opts.body
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json'
      body = JSON.stringify(opts.json)
    } else if (opts.contentType) {
      headers['Content-Type'] = opts.contentType
    }
    let response: Response
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, { method, headers, body, signal: opts.signal })
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') throw error
      throw new ApiError(0, 'network', `Could not reach the upload service at ${this.baseUrl}. Check your connection.`)
    }
    const text = await response.text()
    if (!response.ok) throw errorFromResponse(response.status, text)
    try {
      return (text ? JSON.parse(text) : {}) as T
    } catch {
      throw new ApiError(response.status, 'bad_response', 'The upload service answered something that is not JSON.')
    }
  }

  health(): Promise<{ status: string }> {
    return this.request('GET', '/health')
  }

  /** The head of the file checked; with the file's `size`, also the part plan its upload gets. */
  preview(head: Blob, size?: number, signal?: AbortSignal): Promise<PreviewResponse> {
    const query = size === undefined ? '' : `?size=${size}`
    return this.request('POST', `/preview${query}`, { body: head, contentType: 'text/csv', signal })
  }

  /** A new upload; `sign` asks for the URLs of parts already checksummed in the same call. */
  createUpload(filename: string, size: number, sign?: SignRequest | null, signal?: AbortSignal): Promise<CreateUploadResponse> {
    const json: Record<string, unknown> = { filename, size, content_type: 'text/csv' }
    if (sign && sign.part_numbers.length > 0) json.sign = sign
    return this.request('POST', '/uploads', { json, signal })
  }

  signParts(
    id: string,
    token: string,
    partNumbers: number[],
    checksums?: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<SignPartsResponse> {
    const json: { part_numbers: number[]; checksums?: Record<string, string> } = { part_numbers: partNumbers }
    if (checksums && Object.keys(checksums).length > 0) json.checksums = checksums
    return this.request('POST', `/uploads/${encodeURIComponent(id)}/parts`, { token, json, signal })
  }

  async listParts(id: string, token: string, signal?: AbortSignal): Promise<ListedPart[]> {
    const answer = await this.request<{ parts: ListedPart[] }>('GET', `/uploads/${encodeURIComponent(id)}/parts`, {
      token,
      signal,
    })
    return answer.parts
  }

  complete(
    id: string,
    token: string,
    parts?: CompletedPart[],
    signal?: AbortSignal,
  ): Promise<CompleteResponse> {
    return this.request('POST', `/uploads/${encodeURIComponent(id)}/complete`, {
      token,
      json: parts ? { parts } : {},
      signal,
    })
  }

  abort(id: string, token: string): Promise<{ upload_id: string; status: 'aborted' }> {
    return this.request('DELETE', `/uploads/${encodeURIComponent(id)}`, { token })
  }

  status(id: string, token: string, signal?: AbortSignal): Promise<StatusDocument> {
    return this.request('GET', `/uploads/${encodeURIComponent(id)}`, { token, signal })
  }

  errorReport(id: string, token: string): Promise<{ url: string; expires_at: string }> {
    return this.request('GET', `/uploads/${encodeURIComponent(id)}/errors`, { token })
  }

  /** A page of the upload's totals per document (1..1000, default 100) and the CSV's link; 409 before they exist. */
  results(
    id: string,
    token: string,
    opts: { cursor?: string; limit?: number; signal?: AbortSignal } = {},
  ): Promise<ResultsPage> {
    const query = new URLSearchParams()
    if (opts.cursor !== undefined) query.set('cursor', opts.cursor)
    if (opts.limit !== undefined) query.set('limit', String(opts.limit))
    const text = query.toString()
    return this.request('GET', `/uploads/${encodeURIComponent(id)}/results${text ? `?${text}` : ''}`, {
      token,
      signal: opts.signal,
    })
  }

  retry(id: string, token: string): Promise<{ upload_id: string; requeued: number }> {
    return this.request('POST', `/uploads/${encodeURIComponent(id)}/retry`, { token })
  }
}

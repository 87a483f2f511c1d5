// An upload's results: whether its status document says they exist, how a document
// reads on the page, and the link to the totals CSV kept fresh while it is shown.
import { describeError, ApiError, type ApiClient } from './api'
import type { StatusDocument } from './types'
import type { StatusTarget, UploadEvent } from './uploadMachine'

/** A presigned link is refreshed this long before it expires … */
export const LINK_REFRESH_MARGIN_MS = 60_000
/** … but never sooner than this (a skewed clock must not make it a busy loop) nor later than the cap. */
export const LINK_REFRESH_MIN_MS = 30_000
export const LINK_REFRESH_MAX_MS = 10 * 60_000
/** A failed request for the link (network, 5xx) is tried again after this. */
export const LINK_RETRY_MS = 5_000

const RESULT_STATES: ReadonlySet<string> = new Set(['completed', 'completed_with_errors'])

/** The status document says the totals are consolidated (and can be downloaded). */
export function hasResults(doc: Pick<StatusDocument, 'status' | 'documents_total'> | null): boolean {
  return doc !== null && RESULT_STATES.has(doc.status) && typeof doc.documents_total === 'number'
}

/** A normalised document as people write it: 529.982.247-25, 12.ABC.345/01DE-35; anything else as it is. */
export function formatDocument(document: string): string {
  if (/^\d{11}$/.test(document)) {
    return `${document.slice(0, 3)}.${document.slice(3, 6)}.${document.slice(6, 9)}-${document.slice(9)}`
  }
  if (/^[0-9A-Z]{12}\d{2}$/.test(document)) {
    return `${document.slice(0, 2)}.${document.slice(2, 5)}.${document.slice(5, 8)}/${document.slice(8, 12)}-${document.slice(12)}`
  }
  return document
}

/** How long to use a link that expires at `expiresAt` before asking for a fresh one. */
export function linkRefreshDelay(expiresAt: string, nowMs: number): number {
  const expires = Date.parse(expiresAt)
  if (Number.isNaN(expires)) return LINK_REFRESH_MIN_MS
  const delay = expires - nowMs - LINK_REFRESH_MARGIN_MS
  return Math.min(LINK_REFRESH_MAX_MS, Math.max(LINK_REFRESH_MIN_MS, delay))
}

/**
 * Ask GET /uploads/{id}/results for the totals CSV's link, report it, and ask again
 * before it expires (a page left open keeps a link that works). A failure is reported;
 * a network or server one is tried again. Returns the function that stops it (nothing
 * is reported after that, and the request in flight is aborted).
 */
export function followResultsLink(
  api: Pick<ApiClient, 'results'>,
  target: StatusTarget,
  report: (event: UploadEvent) => void,
  later: (fn: () => void, ms: number) => () => void,
  wallNow: () => number = Date.now,
): () => void {
  let stopped = false
  let cancelTimer: (() => void) | null = null
  const aborter = new AbortController()
  const fetchLink = async () => {
    let delay: number
    try {
      const page = await api.results(target.uploadId, target.token, { limit: 1, signal: aborter.signal })
      if (stopped) return
      report({ type: 'resultsLinkReceived', uploadId: target.uploadId, link: page.download })
      delay = linkRefreshDelay(page.download.expires_at, wallNow())
    } catch (error) {
      if (stopped) return
      report({ type: 'resultsLinkFailed', uploadId: target.uploadId, message: describeError(error) })
      if (!(error instanceof ApiError) || !error.retryable) return
      delay = LINK_RETRY_MS
    }
    cancelTimer = later(() => void fetchLink(), delay)
  }
  void fetchLink()
  return () => {
    stopped = true
    aborter.abort()
    cancelTimer?.()
  }
}

import { describe, expect, it } from 'vitest'
import { ApiClient, ApiError } from './api'
import {
  followResultsLink,
  formatDocument,
  hasResults,
  LINK_REFRESH_MAX_MS,
  LINK_REFRESH_MIN_MS,
  LINK_RETRY_MS,
  linkRefreshDelay,
} from './results'
import type { ResultsPage } from './types'
import type { UploadEvent } from './uploadMachine'

const flush = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (error: unknown) => void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

describe('hasResults', () => {
  it('needs a completed status and the count of documents', () => {
    expect(hasResults({ status: 'completed', documents_total: 0 })).toBe(true)
    expect(hasResults({ status: 'completed_with_errors', documents_total: 12 })).toBe(true)
    expect(hasResults({ status: 'completed' })).toBe(false) // before the results, or an API without them
    expect(hasResults({ status: 'processing', documents_total: 12 })).toBe(false)
    expect(hasResults({ status: 'failed', documents_total: 12 })).toBe(false)
    expect(hasResults(null)).toBe(false)
  })
})

describe('formatDocument', () => {
  it('masks CPFs and CNPJs (alphanumeric ones too) and leaves anything else alone', () => {
    expect(formatDocument('52998224725')).toBe('529.982.247-25')
    expect(formatDocument('11222333000181')).toBe('11.222.333/0001-81')
    expect(formatDocument('12ABC34501DE35')).toBe('12.ABC.345/01DE-35')
    expect(formatDocument('123')).toBe('123')
    expect(formatDocument('12abc34501de35')).toBe('12abc34501de35')
  })
})

describe('linkRefreshDelay', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  it('asks again a minute before the link expires, within bounds', () => {
    expect(linkRefreshDelay('2026-01-01T00:05:00Z', now)).toBe(4 * 60_000)
    expect(linkRefreshDelay('2026-01-01T01:00:00Z', now)).toBe(LINK_REFRESH_MAX_MS)
    expect(linkRefreshDelay('2026-01-01T00:00:30Z', now)).toBe(LINK_REFRESH_MIN_MS)
    expect(linkRefreshDelay('2025-12-31T00:00:00Z', now)).toBe(LINK_REFRESH_MIN_MS) // a clock ahead of the server's
    expect(linkRefreshDelay('garbage', now)).toBe(LINK_REFRESH_MIN_MS)
  })
})

/** The API's results route answered when the test says. */
class ResultsApi extends ApiClient {
  readonly asked: { uploadId: string; token: string; limit: number | undefined; signal: AbortSignal | undefined; answer: Deferred<ResultsPage> }[] = []
  constructor() {
    super('http://api.test', () => Promise.reject(new Error('no network in these tests')))
  }
  override results(uploadId: string, token: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<ResultsPage> {
    const answer = deferred<ResultsPage>()
    this.asked.push({ uploadId, token, limit: opts.limit, signal: opts.signal, answer })
    return answer.promise
  }
}

function pageWith(url: string, expiresAt: string): ResultsPage {
  return { upload_id: 'u-1', documents: [], next_cursor: null, documents_total: 3, download: { url, expires_at: expiresAt } }
}

function following() {
  const api = new ResultsApi()
  const events: UploadEvent[] = []
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = []
  const now = Date.parse('2026-01-01T00:00:00Z')
  const stop = followResultsLink(
    api,
    { uploadId: 'u-1', token: 't-1' },
    (event) => events.push(event),
    (fn, ms) => {
      const timer = { fn, ms, cancelled: false }
      timers.push(timer)
      return () => {
        timer.cancelled = true
      }
    },
    () => now,
  )
  return { api, events, timers, stop }
}

describe('followResultsLink', () => {
  it('asks for one document with the token, reports the link, and a fresh one before it expires', async () => {
    const t = following()
    expect(t.api.asked.map((a) => [a.uploadId, a.token, a.limit])).toEqual([['u-1', 't-1', 1]])
    t.api.asked[0]!.answer.resolve(pageWith('https://s3.test/one', '2026-01-01T00:15:00Z'))
    await flush()
    expect(t.events).toEqual([
      { type: 'resultsLinkReceived', uploadId: 'u-1', link: { url: 'https://s3.test/one', expires_at: '2026-01-01T00:15:00Z' } },
    ])
    expect(t.timers.map((timer) => timer.ms)).toEqual([LINK_REFRESH_MAX_MS])
    t.timers[0]!.fn()
    t.api.asked[1]!.answer.resolve(pageWith('https://s3.test/two', '2026-01-01T00:25:00Z'))
    await flush()
    expect(t.events.map((e) => (e.type === 'resultsLinkReceived' ? e.link.url : e.type))).toEqual([
      'https://s3.test/one',
      'https://s3.test/two',
    ])
  })

  it('tries again after a network or server failure, not after a refusal', async () => {
    const t = following()
    t.api.asked[0]!.answer.reject(new ApiError(0, 'network', 'offline.'))
    await flush()
    expect(t.events).toEqual([{ type: 'resultsLinkFailed', uploadId: 'u-1', message: 'offline.' }])
    expect(t.timers.map((timer) => timer.ms)).toEqual([LINK_RETRY_MS])
    t.timers[0]!.fn()
    t.api.asked[1]!.answer.reject(new ApiError(403, 'forbidden', 'token of another upload'))
    await flush()
    expect(t.events.at(-1)).toEqual({ type: 'resultsLinkFailed', uploadId: 'u-1', message: 'token of another upload' })
    expect(t.timers).toHaveLength(1) // only the first one: nothing more is asked
  })

  it('reports nothing once stopped, aborts the request and cancels the refresh', async () => {
    const t = following()
    t.api.asked[0]!.answer.resolve(pageWith('https://s3.test/one', '2026-01-01T00:15:00Z'))
    await flush()
    t.timers[0]!.fn()
    t.stop()
    expect(t.api.asked[1]!.signal!.aborted).toBe(true)
    t.api.asked[1]!.answer.resolve(pageWith('https://s3.test/two', '2026-01-01T00:25:00Z'))
    await flush()
    expect(t.events).toHaveLength(1)
    expect(t.timers).toHaveLength(1)
  })
})

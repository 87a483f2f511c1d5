import { describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError } from './api'
import { ChecksumPool } from './checksum'
import type { PartDigest } from './crc32'
import { fingerprint } from './fingerprint'
import { HeadStart } from './headStart'
import { MemoryStorage, UploadStore, type SavedSession } from './storage'
import type { PartPlan, PreviewResponse, ResultsPage, StatusDocument } from './types'
import type { PreparedSession, UploadEvents } from './uploader'
import {
  POLL_INTERVAL_MS,
  pollStatus,
  PREVIEW_BYTES,
  PROGRESS_UI_INTERVAL_MS,
  UploadRunner,
  type UploadEngine,
  type UploadRunnerDeps,
} from './uploadRunner'
import type { UploadEvent } from './uploadMachine'

const MiB = 1024 * 1024

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

/** Let every settled promise run its callbacks. */
const flush = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

/** The API: previews, status polls and results links answered when the test says; nothing else is called by the runner. */
class FakeApi extends ApiClient {
  readonly previews: { head: Blob; size: number | undefined; answer: Deferred<PreviewResponse> }[] = []
  readonly polls: { uploadId: string; signal: AbortSignal | undefined; answer: Deferred<StatusDocument> }[] = []
  readonly links: { uploadId: string; signal: AbortSignal | undefined; answer: Deferred<ResultsPage> }[] = []

  constructor() {
    super('http://api.test', () => Promise.reject(new Error('no network in these tests')))
  }

  override preview(head: Blob, size?: number): Promise<PreviewResponse> {
    const answer = deferred<PreviewResponse>()
    this.previews.push({ head, size, answer })
    return answer.promise
  }

  override status(uploadId: string, _token: string, signal?: AbortSignal): Promise<StatusDocument> {
    const answer = deferred<StatusDocument>()
    this.polls.push({ uploadId, signal, answer })
    return answer.promise
  }

  override results(uploadId: string, _token: string, opts: { signal?: AbortSignal } = {}): Promise<ResultsPage> {
    const answer = deferred<ResultsPage>()
    this.links.push({ uploadId, signal: opts.signal, answer })
    return answer.promise
  }
}

class FakeEngine implements UploadEngine {
  readonly calls: string[] = []
  readonly cancelled = deferred<void>()
  constructor(
    readonly prepared: PreparedSession,
    readonly events: UploadEvents,
    readonly pool: ChecksumPool | undefined,
    readonly head: HeadStart | null,
  ) {}
  start(): void {
    this.calls.push('start')
  }
  pause(): void {
    this.calls.push('pause')
  }
  resume(): void {
    this.calls.push('resume')
  }
  cancel(): Promise<void> {
    this.calls.push('cancel')
    return this.cancelled.promise
  }
  destroy(): void {
    this.calls.push('destroy')
  }
}

const plan: PartPlan = { part_size: 8 * MiB, part_count: 2 }

function previewOf(upload: PartPlan | null = plan): PreviewResponse {
  return {
    encoding: 'utf-8',
    delimiter: ';',
    header: ['documento', 'valor'],
    columns: { document: 'documento', amount: 'valor' },
    rows: [],
    upload: upload ?? undefined,
  }
}

function statusDoc(uploadId: string, status: StatusDocument['status']): StatusDocument {
  return {
    upload_id: uploadId,
    key: `uploads/${uploadId}.csv`,
    filename: 'pagamentos.csv',
    size: 10 * MiB,
    part_size: 8 * MiB,
    part_count: 2,
    status,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    error: null,
    format: null,
    chunks: { total: 2, done: 0, failed: 0 },
    summary: null,
    first_errors: [],
    report_key: null,
  }
}

function csv(name = 'pagamentos.csv', size = 10 * MiB): File {
  return new File([new Uint8Array(size)], name, { lastModified: 7 })
}

function savedSession(file: File, uploadId = 'u-1'): SavedSession {
  return {
    upload_id: uploadId,
    token: `t-${uploadId}`,
    key: `uploads/${uploadId}.csv`,
    part_size: plan.part_size,
    part_count: plan.part_count,
    filename: file.name,
    size: file.size,
    saved_at: '2026-01-01T00:00:00Z',
    checksums: true,
  }
}

/** A runner wired to fakes, and everything the fakes saw. */
function setUp(options: { config?: Promise<ApiClient> } = {}) {
  const api = new FakeApi()
  const store = new UploadStore(new MemoryStorage())
  const prepares: { file: File; head: HeadStart | null; answer: Deferred<PreparedSession> }[] = []
  const engines: FakeEngine[] = []
  const pools: ChecksumPool[] = []
  const heads: { file: File; plan: PartPlan; pool: ChecksumPool; head: HeadStart }[] = []
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = []
  const clock = { now: 1000 }
  let configLoads = 0
  const deps: UploadRunnerDeps = {
    loadApi: () => {
      configLoads += 1
      return options.config ?? Promise.resolve(api)
    },
    store,
    prepare: (_api, _store, file, head) => {
      const answer = deferred<PreparedSession>()
      prepares.push({ file, head, answer })
      return answer.promise
    },
    createEngine: (_api, _file, prepared, events, pool, head) => {
      const engine = new FakeEngine(prepared, events, pool, head)
      engines.push(engine)
      return engine
    },
    createPool: () => {
      const pool = new ChecksumPool() // no Worker in Node: a pool that hashes on the main thread
      vi.spyOn(pool, 'close')
      pools.push(pool)
      return pool
    },
    startHeadStart: (file, partPlan, pool) => {
      // Reads that never finish: the runner only hands the head start on, or closes it.
      const never = () => new Promise<PartDigest>(() => undefined)
      const head = new HeadStart(file, partPlan, never, { parts: 1, budget: partPlan.part_size })
      vi.spyOn(head, 'close')
      heads.push({ file, plan: partPlan, pool, head })
      return head
    },
    now: () => clock.now,
    later: (fn, ms) => {
      const timer = { fn, ms, cancelled: false }
      timers.push(timer)
      return () => {
        timer.cancelled = true
      }
    },
  }
  const runner = new UploadRunner(deps)
  const renders = { count: 0 }
  runner.subscribe(() => {
    renders.count += 1
  })
  return {
    runner,
    deps,
    api,
    store,
    prepares,
    engines,
    pools,
    heads,
    timers,
    clock,
    renders,
    configLoads: () => configLoads,
    /** Run the timers that are due (each once). */
    fireTimers: () => {
      const due = timers.splice(0).filter((t) => !t.cancelled)
      for (const t of due) t.fn()
    },
  }
}

/** Connected, a CSV chosen and its preview answered: the start button is shown. */
async function ready(t: ReturnType<typeof setUp>, file = csv(), preview = previewOf()) {
  t.runner.connect()
  await flush()
  const choosing = t.runner.chooseFile(file)
  t.api.previews.at(-1)!.answer.resolve(preview)
  await choosing
  return file
}

function prepared(file: File, resumed = false, uploadId = 'u-1'): PreparedSession {
  return { session: savedSession(file, uploadId), resumed, checksums: true, signed: null }
}

/** Ready, then started, with the upload prepared as `session`: the engine runs. */
async function uploading(t: ReturnType<typeof setUp>, resumed = false) {
  const file = await ready(t)
  const starting = t.runner.start()
  t.prepares.at(-1)!.answer.resolve(prepared(file, resumed))
  await starting
  return { file, engine: t.engines.at(-1)! }
}

describe('connecting', () => {
  it('reads config.json once; the file input waits for it', async () => {
    const config = deferred<ApiClient>()
    const t = setUp({ config: config.promise })
    t.runner.connect()
    t.runner.connect()
    await t.runner.chooseFile(csv()) // the input is disabled meanwhile: nothing happens
    expect(t.runner.getState()).toMatchObject({ api: null, phase: 'idle', file: null })
    config.resolve(t.api)
    await flush()
    expect(t.configLoads()).toBe(1)
    expect(t.runner.getState().api).toBe(t.api)
    expect(t.api.previews).toHaveLength(0)
  })
  it('says in words why the page is not configured', async () => {
    const t = setUp({ config: Promise.reject(new Error('config.json could not be loaded (HTTP 404)')) })
    t.runner.connect()
    await flush()
    expect(t.runner.getState()).toMatchObject({ api: null, configError: 'config.json could not be loaded (HTTP 404)' })
  })
  it('starts with the recent uploads storage remembers', () => {
    const storage = new MemoryStorage()
    const item = { upload_id: 'u-0', token: 't', filename: 'a.csv', size: 1, created_at: 'x' }
    new UploadStore(storage).remember(item)
    const t = setUp()
    const runner = new UploadRunner({ ...t.deps, store: new UploadStore(storage) })
    expect(runner.getState().recent).toEqual([item])
  })
})

describe('choosing a file', () => {
  it('refuses a file that is not a CSV without a request, a worker or a read', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    await t.runner.chooseFile(new File(['documento;valor\n'], 'notes.txt'))
    await t.runner.chooseFile(new File([], 'empty.csv'))
    expect(t.runner.getState()).toMatchObject({ phase: 'rejected', message: '"empty.csv" is empty: there is nothing to upload.' })
    expect(t.api.previews).toHaveLength(0)
    expect(t.pools).toHaveLength(0)
  })
  it('previews the first MiB with the file size, starts the workers, then reads the first parts', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    const file = csv()
    const choosing = t.runner.chooseFile(file)
    expect(t.runner.getState()).toMatchObject({ phase: 'checking', file, resumable: false })
    expect(t.pools).toHaveLength(1)
    const [asked] = t.api.previews
    expect(asked!.head.size).toBe(PREVIEW_BYTES)
    expect(asked!.size).toBe(file.size)
    expect(t.heads).toHaveLength(0) // not before the server answered the part plan
    asked!.answer.resolve(previewOf())
    await choosing
    expect(t.runner.getState()).toMatchObject({ phase: 'ready', preview: previewOf() })
    expect(t.heads).toEqual([{ file, plan, pool: t.pools[0], head: expect.any(HeadStart) }])
  })
  it('reads no part when the preview has no part plan', async () => {
    const t = setUp()
    await ready(t, csv(), previewOf(null))
    expect(t.runner.getState().phase).toBe('ready')
    expect(t.heads).toHaveLength(0)
  })
  it('says a saved unfinished upload of the file will be resumed', async () => {
    const t = setUp()
    const file = csv()
    t.store.saveSession(fingerprint(file), savedSession(file))
    await ready(t, file)
    expect(t.runner.getState()).toMatchObject({ phase: 'ready', resumable: true })
  })
  it('drops the preview of a file chosen before, and reads no part of it', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    const first = csv('first.csv')
    const second = csv('second.csv')
    const choosingFirst = t.runner.chooseFile(first)
    const choosingSecond = t.runner.chooseFile(second)
    t.api.previews[0]!.answer.resolve(previewOf())
    await choosingFirst
    expect(t.runner.getState()).toMatchObject({ phase: 'checking', file: second })
    expect(t.heads).toHaveLength(0)
    t.api.previews[1]!.answer.reject(new ApiError(422, 'no_document_column', 'No column holds CPF/CNPJ documents.'))
    await choosingSecond
    expect(t.runner.getState()).toMatchObject({ phase: 'rejected', message: 'No column holds CPF/CNPJ documents.' })
    expect(t.pools).toHaveLength(1) // one pool for the page until an upload takes it
  })
  it('ignores a failed preview of a file chosen before', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    const choosingFirst = t.runner.chooseFile(csv('first.csv'))
    const choosingSecond = t.runner.chooseFile(csv('second.csv'))
    t.api.previews[0]!.answer.reject(new Error('offline'))
    await choosingFirst
    expect(t.runner.getState().phase).toBe('checking')
    t.api.previews[1]!.answer.resolve(previewOf())
    await choosingSecond
    expect(t.runner.getState().phase).toBe('ready')
  })
  it('drops the parts read for the last file when another is chosen', async () => {
    const t = setUp()
    await ready(t)
    const { head } = t.heads[0]!
    await t.runner.chooseFile(null)
    expect(head.close).toHaveBeenCalled()
    expect(t.runner.getState()).toMatchObject({ phase: 'idle', file: null, preview: null })
  })
})

describe('starting', () => {
  it('prepares with the parts read, hands the engine the workers and the parts, then starts it', async () => {
    const t = setUp()
    const file = await ready(t)
    const starting = t.runner.start()
    expect(t.runner.getState()).toMatchObject({ phase: 'preparing', progress: { bytesDone: 0, bytesTotal: file.size } })
    const { head } = t.heads[0]!
    expect(t.prepares).toEqual([{ file, head, answer: expect.anything() }])
    t.store.remember({ upload_id: 'u-1', token: 't-u-1', filename: file.name, size: file.size, created_at: 'x' })
    t.prepares[0]!.answer.resolve(prepared(file))
    await starting
    const engine = t.engines[0]!
    expect(engine.pool).toBe(t.pools[0])
    expect(engine.head).toBe(head)
    expect(engine.calls).toEqual(['start'])
    expect(t.runner.getState()).toMatchObject({ phase: 'uploading', announcement: 'Upload started' })
    expect(t.runner.getState().recent.map((r) => r.upload_id)).toEqual(['u-1'])
    // The engine owns the workers and the parts now: leaving the page closes them through it.
    t.runner.dispose()
    expect(t.pools[0]!.close).not.toHaveBeenCalled()
    expect(head.close).not.toHaveBeenCalled()
    expect(engine.calls).toEqual(['start', 'destroy'])
  })
  it('says when it resumes an unfinished upload', async () => {
    const t = setUp()
    await uploading(t, true)
    expect(t.runner.getState().announcement).toBe('Resuming the upload')
  })
  it('starts once however often the button is pressed', async () => {
    const t = setUp()
    await ready(t)
    void t.runner.start()
    void t.runner.start()
    expect(t.prepares).toHaveLength(1)
  })
  it('fails in words when the upload cannot be prepared, closing the parts read; Resume prepares again', async () => {
    const t = setUp()
    const file = await ready(t)
    const starting = t.runner.start()
    t.prepares[0]!.answer.reject(new ApiError(503, 'unavailable', 'The upload service had a problem; try again shortly (HTTP 503).'))
    await starting
    expect(t.runner.getState()).toMatchObject({
      phase: 'failed',
      message: 'The upload service had a problem; try again shortly (HTTP 503).',
    })
    expect(t.heads[0]!.head.close).toHaveBeenCalled()
    await t.runner.cancel() // no engine, nothing on the server to delete: Cancel does nothing
    expect(t.runner.getState().phase).toBe('failed')
    const again = t.runner.resume()
    expect(t.prepares[1]).toMatchObject({ file, head: null })
    t.prepares[1]!.answer.resolve(prepared(file))
    await again
    expect(t.engines[0]!.pool).toBe(t.pools[0]) // the workers waited for the upload that started
    expect(t.runner.getState().phase).toBe('uploading')
  })
  it('starts no engine when the page went away while preparing', async () => {
    const t = setUp()
    const file = await ready(t)
    const starting = t.runner.start()
    t.runner.dispose()
    t.prepares[0]!.answer.resolve(prepared(file))
    await starting
    expect(t.engines).toHaveLength(0)
    expect(t.heads[0]!.head.close).toHaveBeenCalled()
    expect(t.pools[0]!.close).toHaveBeenCalled()
  })
})

describe('progress', () => {
  it('repaints at most every PROGRESS_UI_INTERVAL_MS, and at the end', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    const total = file.size
    t.clock.now += 1000
    engine.events.onProgress(MiB, total)
    const first = t.runner.getState().progress
    expect(first).toMatchObject({ bytesDone: MiB, bytesTotal: total, percent: 10 })
    const renders = t.renders.count
    t.clock.now += PROGRESS_UI_INTERVAL_MS - 1
    engine.events.onProgress(2 * MiB, total)
    expect(t.runner.getState().progress).toBe(first)
    expect(t.renders.count).toBe(renders) // nothing to paint: nothing renders
    t.clock.now += 1
    engine.events.onProgress(2 * MiB, total)
    expect(t.runner.getState().progress).toMatchObject({ bytesDone: 2 * MiB })
    t.clock.now += 300
    engine.events.onProgress(3 * MiB, total)
    expect(t.runner.getState().progress).toMatchObject({ bytesDone: 3 * MiB, rate: 4 * MiB }) // 2 MiB in 0.5 s
    engine.events.onProgress(total, total) // the end is painted at once
    expect(t.runner.getState().progress).toMatchObject({ bytesDone: total, percent: 100 })
  })
  it('announces the 25 % steps between repaints', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    t.clock.now += 1000
    engine.events.onProgress(MiB, file.size)
    engine.events.onProgress(3 * MiB, file.size) // not repainted, but a step
    expect(t.runner.getState()).toMatchObject({ announcement: 'Upload 25% done', progress: { bytesDone: MiB } })
  })
  it('counts the parts S3 already held as sent', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t, true)
    engine.events.onAlreadyUploaded!(MiB, 1)
    expect(t.runner.getState()).toMatchObject({
      announcement: '1 parts were already stored; sending the rest',
      progress: { bytesDone: MiB, bytesTotal: file.size },
    })
    engine.events.onAlreadyUploaded!(0, 0) // nothing was there: nothing to say
    expect(t.runner.getState().announcement).toBe('1 parts were already stored; sending the rest')
  })
  it('forgets the speed measured before a pause', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    engine.events.onProgress(0, file.size)
    t.clock.now += 1000
    engine.events.onProgress(MiB, file.size)
    engine.events.onPaused(true)
    engine.events.onPaused(false)
    t.clock.now += 10_000
    engine.events.onProgress(2 * MiB, file.size)
    expect(t.runner.getState().progress!.rate).toBeNull() // one sample since the pause: no speed yet
  })
})

describe('pause and resume', () => {
  it('pauses and resumes the engine; the phase follows what the engine reports', async () => {
    const t = setUp()
    const { engine } = await uploading(t)
    t.runner.resume() // not paused: nothing to resume
    t.runner.pause()
    expect(engine.calls).toEqual(['start', 'pause'])
    expect(t.runner.getState().phase).toBe('uploading')
    engine.events.onPaused(true)
    expect(t.runner.getState()).toMatchObject({ phase: 'paused', announcement: 'Upload paused' })
    t.runner.pause() // already paused
    await t.runner.resume()
    expect(engine.calls).toEqual(['start', 'pause', 'resume'])
    engine.events.onPaused(false)
    expect(t.runner.getState()).toMatchObject({ phase: 'uploading', announcement: 'Upload resumed' })
  })
  it('after the engine gave up, Resume continues with a fresh engine; the old one falls silent', async () => {
    const t = setUp()
    const { file, engine: first } = await uploading(t)
    first.events.onError('The connection to storage failed repeatedly. Resume to try again.')
    expect(t.runner.getState()).toMatchObject({
      phase: 'failed',
      message: 'The connection to storage failed repeatedly. Resume to try again.',
      announcement: 'Upload stopped: The connection to storage failed repeatedly. Resume to try again.',
    })
    const resuming = t.runner.resume()
    expect(first.calls).toEqual(['start', 'destroy'])
    expect(t.runner.getState().phase).toBe('preparing')
    first.events.onProgress(file.size, file.size)
    first.events.onError('late')
    expect(t.runner.getState()).toMatchObject({ phase: 'preparing', message: null })
    t.prepares[1]!.answer.resolve(prepared(file, true))
    await resuming
    const second = t.engines[1]!
    expect(second.pool).toBeUndefined() // the first engine closed the page's workers; it makes its own
    expect(second.calls).toEqual(['start'])
    expect(t.runner.getState()).toMatchObject({ phase: 'uploading', announcement: 'Resuming the upload' })
  })
})

describe('completion', () => {
  it('forgets the saved session, keeps the time, and follows the processing until it is final', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    t.store.saveSession(fingerprint(file), savedSession(file))
    engine.events.onCompleting()
    expect(t.runner.getState().phase).toBe('completing')
    t.clock.now += 4321
    engine.events.onComplete({ upload_id: 'u-1', status: 'uploaded', key: 'k', size: file.size, etag: 'e' })
    expect(t.store.loadSession(fingerprint(file))).toBeNull()
    expect(t.runner.getState()).toMatchObject({
      phase: 'uploaded',
      finished: { elapsedMs: 4321, bytes: file.size },
      statusTarget: { uploadId: 'u-1', token: 't-u-1' },
      announcement: 'Upload complete; validation started',
    })
    expect(t.api.polls.map((p) => p.uploadId)).toEqual(['u-1'])
    t.api.polls[0]!.answer.resolve(statusDoc('u-1', 'processing'))
    await flush()
    expect(t.runner.getState().statusDoc?.status).toBe('processing')
    expect(t.timers.map((timer) => timer.ms)).toEqual([POLL_INTERVAL_MS])
    t.fireTimers()
    t.api.polls[1]!.answer.resolve(statusDoc('u-1', 'completed_with_errors'))
    await flush()
    expect(t.runner.getState().statusDoc?.status).toBe('completed_with_errors')
    expect(t.timers).toHaveLength(0) // final: no more polls
  })
})

describe('cancel', () => {
  it('deletes the upload, forgets the saved session and drops the engine', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    t.store.saveSession(fingerprint(file), savedSession(file))
    const cancelling = t.runner.cancel()
    expect(t.runner.getState().phase).toBe('cancelling')
    engine.events.onError('aborted') // what the engine says while cancelled is not shown
    expect(t.runner.getState()).toMatchObject({ phase: 'cancelling', message: null })
    engine.cancelled.resolve()
    await cancelling
    expect(engine.calls).toEqual(['start', 'cancel', 'destroy'])
    expect(t.store.loadSession(fingerprint(file))).toBeNull()
    expect(t.runner.getState()).toMatchObject({ phase: 'cancelled', progress: null, announcement: 'Upload cancelled' })
    t.runner.pause()
    await t.runner.cancel()
    expect(engine.calls).toEqual(['start', 'cancel', 'destroy']) // gone: nothing more is asked of it
  })
  it('says so when the server could not delete it, and keeps the session to resume', async () => {
    const t = setUp()
    const { file, engine } = await uploading(t)
    t.store.saveSession(fingerprint(file), savedSession(file))
    const cancelling = t.runner.cancel()
    engine.cancelled.reject(new ApiError(0, 'network', 'Could not reach the upload service at http://api.test. Check your connection.'))
    await cancelling
    expect(t.runner.getState()).toMatchObject({
      phase: 'failed',
      message: 'Could not cancel: Could not reach the upload service at http://api.test. Check your connection.',
    })
    expect(engine.calls).toEqual(['start', 'cancel', 'destroy'])
    expect(t.store.loadSession(fingerprint(file))).not.toBeNull()
  })
  it('is refused before the upload started', async () => {
    const t = setUp()
    await ready(t)
    await t.runner.cancel()
    expect(t.runner.getState().phase).toBe('ready')
  })
})

describe('the status of a recent upload', () => {
  it('follows the upload opened; the poll of the one before is aborted and its answer dropped', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.runner.openStatus({ uploadId: 'u-2', token: 't-2' })
    expect(t.api.polls.map((p) => p.uploadId)).toEqual(['u-1', 'u-2'])
    expect(t.api.polls[0]!.signal!.aborted).toBe(true)
    t.api.polls[0]!.answer.resolve(statusDoc('u-1', 'completed'))
    t.api.polls[1]!.answer.resolve(statusDoc('u-2', 'completed'))
    await flush()
    expect(t.runner.getState().statusDoc?.upload_id).toBe('u-2')
  })
  it('waits for config.json before polling', async () => {
    const config = deferred<ApiClient>()
    const t = setUp({ config: config.promise })
    t.runner.connect()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    expect(t.api.polls).toHaveLength(0)
    config.resolve(t.api)
    await flush()
    expect(t.api.polls.map((p) => p.uploadId)).toEqual(['u-1'])
  })
  it('shows a failed poll in words and tries again', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[0]!.answer.reject(new ApiError(0, 'network', 'offline.'))
    await flush()
    expect(t.runner.getState().pollError).toBe('Could not refresh the status: offline.')
    t.fireTimers()
    t.api.polls[1]!.answer.resolve(statusDoc('u-1', 'processing'))
    await flush()
    expect(t.runner.getState()).toMatchObject({ pollError: null, statusDoc: { status: 'processing' } })
  })
  it('polls again from the start after failed chunks were retried', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.refreshStatus() // nothing followed: nothing to refresh
    expect(t.api.polls).toHaveLength(0)
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[0]!.answer.resolve({ ...statusDoc('u-1', 'failed'), chunks: { total: 2, done: 1, failed: 1 } })
    await flush()
    expect(t.timers).toHaveLength(0)
    t.runner.refreshStatus()
    expect(t.api.polls).toHaveLength(2)
    expect(t.runner.getState().statusDoc?.status).toBe('failed') // kept until the next answer
  })
  it('stops polling when the page goes away, and picks up again when it comes back', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[0]!.answer.resolve(statusDoc('u-1', 'processing'))
    await flush()
    t.runner.dispose()
    expect(t.timers[0]!.cancelled).toBe(true)
    t.runner.connect() // React's StrictMode mounts, unmounts and mounts again
    expect(t.api.polls).toHaveLength(2)
    expect(t.configLoads()).toBe(1)
  })
})

describe('the results of the upload followed', () => {
  const withResults = (uploadId: string): StatusDocument => ({
    ...statusDoc(uploadId, 'completed'),
    chunks: { total: 2, done: 2, failed: 0 },
    documents_total: 3,
    top_documents: [{ document: '52998224725', type: 'cpf', rows: 2, amount: '1234.50' }],
  })
  const link = { url: 'https://s3.test/results/u-1/totals.csv?X-Amz-Signature=s', expires_at: '2099-01-01T00:00:00Z' }
  const page = (uploadId: string): ResultsPage => ({
    upload_id: uploadId,
    documents: [],
    next_cursor: null,
    documents_total: 3,
    download: link,
  })

  it('asks for the CSV link once the status says the results exist, and holds it', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[0]!.answer.resolve(statusDoc('u-1', 'completed')) // final, but without results (yet)
    await flush()
    expect(t.api.links).toHaveLength(0)
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[1]!.answer.resolve(withResults('u-1'))
    await flush()
    expect(t.api.links.map((l) => l.uploadId)).toEqual(['u-1'])
    t.api.links[0]!.answer.resolve(page('u-1'))
    await flush()
    expect(t.runner.getState()).toMatchObject({ resultsLink: link, resultsError: null })
    expect(t.timers.map((timer) => timer.ms)).toEqual([10 * 60_000]) // the refresh of the link, no more polls
  })

  it('stops following the link when another upload is opened or the page goes away', async () => {
    const t = setUp()
    t.runner.connect()
    await flush()
    t.runner.openStatus({ uploadId: 'u-1', token: 't-1' })
    t.api.polls[0]!.answer.resolve(withResults('u-1'))
    await flush()
    t.runner.openStatus({ uploadId: 'u-2', token: 't-2' })
    expect(t.api.links[0]!.signal!.aborted).toBe(true)
    t.api.links[0]!.answer.resolve(page('u-1'))
    await flush()
    expect(t.runner.getState().resultsLink).toBeNull()
    t.api.polls[1]!.answer.resolve(withResults('u-2'))
    await flush()
    expect(t.api.links.map((l) => l.uploadId)).toEqual(['u-1', 'u-2'])
    t.runner.dispose()
    expect(t.api.links[1]!.signal!.aborted).toBe(true)
    t.runner.connect() // mounted again: the link is asked for again
    expect(t.api.links.map((l) => l.uploadId)).toEqual(['u-1', 'u-2', 'u-2'])
  })
})

describe('leaving the page', () => {
  it('closes the workers and the parts read before any upload', async () => {
    const t = setUp()
    await ready(t)
    t.runner.dispose()
    expect(t.pools[0]!.close).toHaveBeenCalled()
    expect(t.heads[0]!.head.close).toHaveBeenCalled()
  })
})

describe('pollStatus', () => {
  it('reports each answer until the status is final, and nothing after it is stopped', async () => {
    const api = new FakeApi()
    const events: UploadEvent[] = []
    const timers: (() => void)[] = []
    const stop = pollStatus(api, { uploadId: 'u-1', token: 't-1' }, (e) => events.push(e), (fn) => {
      timers.push(fn)
      return () => undefined
    })
    api.polls[0]!.answer.resolve(statusDoc('u-1', 'processing'))
    await flush()
    timers.shift()!()
    stop()
    api.polls[1]!.answer.resolve(statusDoc('u-1', 'completed'))
    await flush()
    expect(events.map((e) => e.type)).toEqual(['statusReceived'])
    expect(api.polls[1]!.signal!.aborted).toBe(true)
    expect(timers).toHaveLength(0)
  })
})

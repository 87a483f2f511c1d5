// The effects of the upload page, outside React: the runner holds the machine's
// state (uploadMachine.ts), performs what the person asks for — the preview, the
// head start, the upload engine, pause, resume, cancel, the status polling, the
// saved sessions, the link to the results once they exist — and dispatches each
// outcome as an event.
//
// Everything that touches the world comes in through UploadRunnerDeps, so the
// whole flow runs in Node with fakes (uploadRunner.test.ts) and useUpload is only
// the binding to React.
import { describeError, type ApiClient } from './api'
import type { ChecksumPool } from './checksum'
import { fingerprint } from './fingerprint'
import type { HeadStart } from './headStart'
import { RateEstimator } from './progress'
import { followResultsLink, hasResults } from './results'
import { shouldKeepPolling } from './status'
import type { UploadStore } from './storage'
import type { PartPlan, PreviewResponse } from './types'
import type { PreparedSession, UploadEvents } from './uploader'
import {
  canCancel,
  canChooseFile,
  canPause,
  initialUploadState,
  uploadReducer,
  type StatusTarget,
  type UploadEvent,
  type UploadState,
} from './uploadMachine'

/** The head of the file the preview checks. */
export const PREVIEW_BYTES = 1024 * 1024
/** The bar and numbers are repainted at most this often: each repaint costs the upload CPU. */
export const PROGRESS_UI_INTERVAL_MS = 200
export const POLL_INTERVAL_MS = 1000

/** What the runner needs of an upload engine (UploadController in the page). */
export interface UploadEngine {
  start(): void
  pause(): void
  resume(): void
  /** stop sending and delete the upload on the server */
  cancel(): Promise<void>
  destroy(): void
}

export interface UploadRunnerDeps {
  /** The API client, once the page's config.json is read. */
  loadApi(): Promise<ApiClient>
  store: UploadStore
  /** The upload to use for `file`: a resumable one from `store`, else a new one (uploader.prepareSession). */
  prepare(api: ApiClient, store: UploadStore, file: File, head: HeadStart | null): Promise<PreparedSession>
  /** An engine for the prepared upload; it owns `pool` and takes `head` over (UploadController). */
  createEngine(
    api: ApiClient,
    file: File,
    prepared: PreparedSession,
    events: UploadEvents,
    pool: ChecksumPool | undefined,
    head: HeadStart | null,
  ): UploadEngine
  createPool(): ChecksumPool
  /** Start reading and checksumming the first parts of `file` (uploader.startHeadStart). */
  startHeadStart(file: File, plan: PartPlan, pool: ChecksumPool): HeadStart
  /** Milliseconds from any fixed origin (performance.now). */
  now(): number
  /** Run `fn` after `ms`; the function returned cancels it. */
  later(fn: () => void, ms: number): () => void
}

export class UploadRunner {
  private readonly deps: UploadRunnerDeps
  private state: UploadState
  private readonly listeners = new Set<() => void>()
  private engine: UploadEngine | null = null
  /** CRC32 workers started when a file is chosen (their WebAssembly compiles meanwhile), handed to the upload */
  private pool: ChecksumPool | null = null
  /** the chosen file's first parts, read and checksummed while its preview is shown */
  private headStart: HeadStart | null = null
  /**
   * Bumped whenever the engine is started, replaced or dropped: the callbacks of an
   * earlier engine, and an upload still preparing when the page went away, then do nothing.
   */
  private run = 0
  private readonly rate = new RateEstimator()
  private lastPaint = 0
  private stopPolling: (() => void) | null = null
  /** the status target whose results link is followed (null: none), and how to stop following it */
  private linkTarget: StatusTarget | null = null
  private stopLink: (() => void) | null = null
  private connecting = false

  constructor(deps: UploadRunnerDeps) {
    this.deps = deps
    this.state = initialUploadState(deps.store.recent())
  }

  // --- the store React reads (useSyncExternalStore) -----------------------------------

  readonly getState = (): UploadState => this.state

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Apply `event`; true when the machine took it (the state changed). */
  private dispatch(event: UploadEvent): boolean {
    const before = this.state
    const after = uploadReducer(before, event)
    if (after === before) return false
    this.state = after
    // The poll follows (api, target, nonce), as an effect with those dependencies would.
    if (before.api !== after.api || before.statusTarget !== after.statusTarget || before.pollNonce !== after.pollNonce) {
      this.restartPolling()
    }
    this.followLink()
    for (const listener of [...this.listeners]) listener()
    return true
  }

  // --- lifetime ---------------------------------------------------------------------------

  /** Read the configuration (once) and follow the status again if one was followed before `dispose`. */
  connect(): void {
    this.restartPolling()
    this.followLink()
    if (this.state.api || this.connecting) return
    this.connecting = true
    this.deps
      .loadApi()
      .then(
        (api) => this.dispatch({ type: 'configLoaded', api }),
        (error: unknown) => this.dispatch({ type: 'configFailed', message: describeError(error) }),
      )
      .finally(() => {
        this.connecting = false
      })
  }

  /** The page goes away: stop the upload, the reads, the workers and the polling. */
  dispose(): void {
    this.dropEngine()
    this.dropHeadStart()
    this.pool?.close()
    this.pool = null
    this.stopPolling?.()
    this.stopPolling = null
    this.stopLink?.()
    this.stopLink = null
    this.linkTarget = null
  }

  // --- actions ------------------------------------------------------------------------------

  /** A file was chosen (or the choice cleared): check it, preview its first rows, read its first parts. */
  async chooseFile(file: File | null): Promise<void> {
    if (!canChooseFile(this.state)) return
    this.dropEngine()
    this.dropHeadStart()
    const resumable = file !== null && this.deps.store.loadSession(fingerprint(file)) !== null
    this.dispatch({ type: 'fileChosen', file, resumable })
    const { api, phase, choice } = this.state
    if (!file || !api || phase !== 'checking') return // cleared, or refused before any request
    this.pool ??= this.deps.createPool()
    let preview: PreviewResponse
    try {
      preview = await api.preview(file.slice(0, PREVIEW_BYTES), file.size)
    } catch (error) {
      this.dispatch({ type: 'previewFailed', choice, message: describeError(error) })
      return
    }
    // An answer for an earlier choice is refused, and its parts are not read.
    if (!this.dispatch({ type: 'previewAnswered', choice, preview })) return
    if (preview.upload && this.pool) this.headStart = this.deps.startHeadStart(file, preview.upload, this.pool)
  }

  /** The "Start upload" (or "Resume upload") button. */
  start(): Promise<void> {
    return this.upload()
  }

  pause(): void {
    if (canPause(this.state.phase)) this.engine?.pause()
  }

  resume(): Promise<void> {
    if (this.state.phase === 'failed') {
      // After retries ran out: a fresh engine continues from what S3 already holds.
      this.dropEngine()
      return this.upload()
    }
    if (this.state.phase === 'paused') this.engine?.resume()
    return Promise.resolve()
  }

  /** Stop the upload and delete its parts (DELETE /uploads/{id}). Needs an engine: a failed prepare has none. */
  async cancel(): Promise<void> {
    const engine = this.engine
    const { file, phase } = this.state
    if (!engine || !file || !canCancel(phase)) return
    this.dispatch({ type: 'cancelRequested' })
    try {
      await engine.cancel()
      this.deps.store.forgetSession(fingerprint(file))
      this.dispatch({ type: 'cancelSucceeded' })
    } catch (error) {
      this.dispatch({ type: 'cancelFailed', reason: describeError(error) })
    } finally {
      if (this.engine === engine) this.dropEngine()
    }
  }

  /** Follow the processing of an upload from the recent list. */
  openStatus(target: StatusTarget): void {
    this.dispatch({ type: 'statusRequested', target })
  }

  /** Poll again from the start (failed chunks were sent back for processing). */
  refreshStatus(): void {
    this.dispatch({ type: 'statusRefreshRequested' })
  }

  // --- the upload -----------------------------------------------------------------------------

  private async upload(): Promise<void> {
    const { api, file } = this.state
    if (!api || !file || !this.dispatch({ type: 'uploadRequested' })) return
    const run = ++this.run
    const startedAt = this.deps.now()
    this.rate.reset()
    this.lastPaint = 0
    // The head start's parts go to the upload: their checksums ride on POST /uploads.
    const head = this.headStart
    this.headStart = null
    let prepared: PreparedSession
    try {
      prepared = await this.deps.prepare(api, this.deps.store, file, head)
    } catch (error) {
      head?.close()
      if (run === this.run) this.dispatch({ type: 'prepareFailed', message: describeError(error) })
      return
    }
    if (run !== this.run) {
      head?.close() // the page went away meanwhile: start nothing
      return
    }
    const pool = this.pool ?? undefined // the engine owns the workers from now on
    this.pool = null
    const target = { uploadId: prepared.session.upload_id, token: prepared.session.token }
    this.engine = this.deps.createEngine(api, file, prepared, this.engineEvents(run, file, startedAt, target), pool, head)
    this.dispatch({ type: 'uploadStarted', resumed: prepared.resumed, recent: this.deps.store.recent() })
    this.engine.start()
  }

  /** The engine's callbacks for upload `run`; they fall silent once another run begins. */
  private engineEvents(run: number, file: File, startedAt: number, target: StatusTarget): UploadEvents {
    const live = () => run === this.run
    const progressed = (bytesDone: number, bytesTotal: number) => {
      const now = this.deps.now()
      this.rate.add(now, bytesDone)
      // Every callback feeds the rate and the milestones; the bar is repainted only
      // every PROGRESS_UI_INTERVAL_MS, and at the end.
      const paint = now - this.lastPaint >= PROGRESS_UI_INTERVAL_MS || bytesDone >= bytesTotal
      if (paint) this.lastPaint = now
      const snapshot = paint ? this.rate.snapshot(bytesDone, bytesTotal) : null
      this.dispatch({ type: 'progressed', bytesDone, bytesTotal, snapshot })
    }
    return {
      onProgress: (bytesDone, bytesTotal) => {
        if (live()) progressed(bytesDone, bytesTotal)
      },
      onAlreadyUploaded: (bytes, parts) => {
        if (!live() || parts === 0) return
        this.dispatch({ type: 'alreadyUploaded', parts })
        progressed(bytes, file.size)
      },
      onPaused: (paused) => {
        if (!live()) return
        this.rate.reset() // the idle time must not drag the speed down
        this.dispatch({ type: 'pauseChanged', paused })
      },
      onCompleting: () => {
        if (live()) this.dispatch({ type: 'completing' })
      },
      onComplete: () => {
        if (!live()) return
        // Nothing is left to resume: the saved session goes (the recent list keeps the upload).
        this.deps.store.forgetSession(fingerprint(file))
        this.dispatch({ type: 'uploadCompleted', elapsedMs: this.deps.now() - startedAt, target })
      },
      onError: (message) => {
        if (live()) this.dispatch({ type: 'uploadFailed', message })
      },
    }
  }

  private dropEngine(): void {
    this.run += 1
    this.engine?.destroy()
    this.engine = null
  }

  private dropHeadStart(): void {
    this.headStart?.close()
    this.headStart = null
  }

  // --- the status -------------------------------------------------------------------------------

  private restartPolling(): void {
    this.stopPolling?.()
    this.stopPolling = null
    const { api, statusTarget } = this.state
    if (!api || !statusTarget) return
    const report = (event: UploadEvent) => void this.dispatch(event)
    this.stopPolling = pollStatus(api, statusTarget, report, (fn, ms) => this.deps.later(fn, ms))
  }

  /** Once the followed upload's status says its results exist, keep a fresh link to its totals CSV. */
  private followLink(): void {
    const { api, statusTarget, statusDoc } = this.state
    const wanted =
      api && statusTarget && statusDoc?.upload_id === statusTarget.uploadId && hasResults(statusDoc) ? statusTarget : null
    if (wanted === this.linkTarget) return
    this.stopLink?.()
    this.stopLink = null
    this.linkTarget = wanted
    if (!api || !wanted) return
    const report = (event: UploadEvent) => void this.dispatch(event)
    this.stopLink = followResultsLink(api, wanted, report, (fn, ms) => this.deps.later(fn, ms))
  }
}

/**
 * Poll GET /uploads/{id} every POLL_INTERVAL_MS until the status is final; a failed
 * poll is reported and tried again. Returns the function that stops it (nothing is
 * reported after that, and the request in flight is aborted).
 */
export function pollStatus(
  api: Pick<ApiClient, 'status'>,
  target: StatusTarget,
  report: (event: UploadEvent) => void,
  later: UploadRunnerDeps['later'],
): () => void {
  let stopped = false
  let cancelTimer: (() => void) | null = null
  const aborter = new AbortController()
  const tick = async () => {
    try {
      const doc = await api.status(target.uploadId, target.token, aborter.signal)
      if (stopped) return
      report({ type: 'statusReceived', uploadId: target.uploadId, doc })
      if (!shouldKeepPolling(doc)) return
    } catch (error) {
      if (stopped) return
      report({ type: 'statusPollFailed', uploadId: target.uploadId, message: describeError(error) })
    }
    cancelTimer = later(() => void tick(), POLL_INTERVAL_MS)
  }
  void tick()
  return () => {
    stopped = true
    aborter.abort()
    cancelTimer?.()
  }
}

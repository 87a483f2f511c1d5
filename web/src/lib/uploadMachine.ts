// The upload page's state machine as a pure reducer: every event the page can meet
// (a file chosen, its preview answered, the engine's progress, pause, completion,
// failure, a cancel, a status poll) and what each one does to what the page shows.
//
// No effects here. UploadRunner (uploadRunner.ts) performs them — requests, the
// upload engine, storage, timers — and reports their outcome as events. An event
// that makes no sense in the current phase (a preview answered for a file chosen
// before, engine progress after a cancel) is refused by returning the very same
// state object: nothing re-renders, and the runner can tell it was refused.
import type { ApiClient } from './api'
import type { ProgressSnapshot } from './progress'
import type { RecentUpload } from './storage'
import type { PreviewResponse, ResultsLink, StatusDocument } from './types'
import { checkFile } from './validate'

export type Phase =
  | 'idle'
  | 'checking'
  | 'rejected'
  | 'ready'
  | 'preparing'
  | 'uploading'
  | 'paused'
  | 'completing'
  | 'failed'
  | 'cancelling'
  | 'cancelled'
  | 'uploaded'

/** The upload whose processing status the page follows. */
export interface StatusTarget {
  uploadId: string
  token: string
}

/** How long the finished upload took, for the "in 12.3 s · 45 MB/s on average" line. */
export interface FinishedUpload {
  elapsedMs: number
  bytes: number
}

export interface UploadState {
  /** set once config.json has been read; the page can do nothing before */
  api: ApiClient | null
  configError: string | null
  phase: Phase
  file: File | null
  /** counts the choices made: an answer carries the count it was asked for, so a late one is dropped */
  choice: number
  /** why the file was refused or the upload stopped */
  message: string | null
  preview: PreviewResponse | null
  /** an unfinished upload of the chosen file was found: starting it sends only the missing parts */
  resumable: boolean
  progress: ProgressSnapshot | null
  /** the last 25 % step announced in this upload, so each is announced once */
  milestone: number
  /** what the polite live region reads out */
  announcement: string
  finished: FinishedUpload | null
  recent: RecentUpload[]
  statusTarget: StatusTarget | null
  /** bumped to poll the status again from the start (after a retry of failed chunks) */
  pollNonce: number
  statusDoc: StatusDocument | null
  pollError: string | null
  /** the followed upload's totals CSV link, once its results exist (GET /uploads/{id}/results) */
  resultsLink: ResultsLink | null
  /** why the link could not be had, in words */
  resultsError: string | null
}

export type UploadEvent =
  | { type: 'configLoaded'; api: ApiClient }
  | { type: 'configFailed'; message: string }
  /** `resumable`: storage holds an unfinished upload of this file */
  | { type: 'fileChosen'; file: File | null; resumable: boolean }
  | { type: 'previewAnswered'; choice: number; preview: PreviewResponse }
  | { type: 'previewFailed'; choice: number; message: string }
  | { type: 'uploadRequested' }
  | { type: 'prepareFailed'; message: string }
  /** the engine was made and starts; `recent` is the list with this upload in it */
  | { type: 'uploadStarted'; resumed: boolean; recent: RecentUpload[] }
  /** `snapshot` null: the bar is not repainted this time (throttled), only milestones are checked */
  | { type: 'progressed'; bytesDone: number; bytesTotal: number; snapshot: ProgressSnapshot | null }
  | { type: 'alreadyUploaded'; parts: number }
  | { type: 'pauseChanged'; paused: boolean }
  | { type: 'completing' }
  | { type: 'uploadCompleted'; elapsedMs: number; target: StatusTarget }
  | { type: 'uploadFailed'; message: string }
  | { type: 'cancelRequested' }
  | { type: 'cancelSucceeded' }
  | { type: 'cancelFailed'; reason: string }
  | { type: 'statusRequested'; target: StatusTarget }
  | { type: 'statusRefreshRequested' }
  | { type: 'statusReceived'; uploadId: string; doc: StatusDocument }
  | { type: 'statusPollFailed'; uploadId: string; message: string }
  | { type: 'resultsLinkReceived'; uploadId: string; link: ResultsLink }
  | { type: 'resultsLinkFailed'; uploadId: string; message: string }

export function initialUploadState(recent: RecentUpload[] = []): UploadState {
  return {
    api: null,
    configError: null,
    phase: 'idle',
    file: null,
    choice: 0,
    message: null,
    preview: null,
    resumable: false,
    progress: null,
    milestone: 0,
    announcement: '',
    finished: null,
    recent,
    statusTarget: null,
    pollNonce: 0,
    statusDoc: null,
    pollError: null,
    resultsLink: null,
    resultsError: null,
  }
}

// --- what each phase allows (the components show the matching controls) -----------

const BUSY: ReadonlySet<Phase> = new Set(['preparing', 'uploading', 'paused', 'completing', 'cancelling'])
/** Phases in which an upload engine runs and its callbacks mean something. */
const ENGINE_LIVE: ReadonlySet<Phase> = new Set(['uploading', 'paused', 'completing'])

/** An upload is under way: the file cannot be changed. */
export function isBusy(phase: Phase): boolean {
  return BUSY.has(phase)
}

export function canChooseFile(state: UploadState): boolean {
  return state.api !== null && !isBusy(state.phase)
}

/** The upload card is shown from the click on until another file is chosen. */
export function showsUploadCard(phase: Phase): boolean {
  return phase !== 'idle' && phase !== 'checking' && phase !== 'rejected' && phase !== 'ready'
}

export function canStart(phase: Phase): boolean {
  return phase === 'ready'
}

export function canPause(phase: Phase): boolean {
  return phase === 'uploading'
}

/** Paused: the engine goes on. Failed (retries ran out): a fresh engine continues from what S3 holds. */
export function canResume(phase: Phase): boolean {
  return phase === 'paused' || phase === 'failed'
}

export function canCancel(phase: Phase): boolean {
  return phase === 'uploading' || phase === 'paused' || phase === 'failed'
}

/**
 * The 25 % step to announce when `done` of `total` bytes are sent and `last` was
 * announced before, or null. 100 % is left to "Upload complete", which says more.
 */
export function milestoneReached(last: number, done: number, total: number): number | null {
  const pct = total > 0 ? Math.floor((done / total) * 100) : 0
  if (pct >= last + 25 && pct < 100) return pct - (pct % 25)
  return null
}

// --- the reducer ----------------------------------------------------------------------

export function uploadReducer(state: UploadState, event: UploadEvent): UploadState {
  switch (event.type) {
    case 'configLoaded':
      // The page connects once; a second answer (React's StrictMode mounts twice in dev) changes nothing.
      return state.api ? state : { ...state, api: event.api, configError: null }

    case 'configFailed':
      return state.api ? state : { ...state, configError: event.message }

    case 'fileChosen': {
      if (!canChooseFile(state)) return state
      const cleared = {
        ...state,
        file: event.file,
        choice: state.choice + 1,
        preview: null,
        progress: null,
        message: null,
        finished: null,
        resumable: false,
      }
      if (!event.file) return { ...cleared, phase: 'idle' }
      const problem = checkFile(event.file)
      if (problem) return { ...cleared, phase: 'rejected', message: problem.message }
      return { ...cleared, phase: 'checking', resumable: event.resumable }
    }

    case 'previewAnswered':
      if (state.phase !== 'checking' || event.choice !== state.choice) return state
      return { ...state, phase: 'ready', preview: event.preview }

    case 'previewFailed':
      if (state.phase !== 'checking' || event.choice !== state.choice) return state
      return { ...state, phase: 'rejected', message: event.message }

    case 'uploadRequested':
      if ((state.phase !== 'ready' && state.phase !== 'failed') || !state.file) return state
      return {
        ...state,
        phase: 'preparing',
        message: null,
        finished: null,
        milestone: 0,
        progress: { bytesDone: 0, bytesTotal: state.file.size, percent: 0, rate: null, secondsLeft: null },
      }

    case 'prepareFailed':
      if (state.phase !== 'preparing') return state
      return { ...state, phase: 'failed', message: event.message }

    case 'uploadStarted':
      if (state.phase !== 'preparing') return state
      return {
        ...state,
        phase: 'uploading',
        recent: event.recent,
        announcement: event.resumed ? 'Resuming the upload' : 'Upload started',
      }

    case 'progressed': {
      if (!ENGINE_LIVE.has(state.phase)) return state
      const step = milestoneReached(state.milestone, event.bytesDone, event.bytesTotal)
      if (step === null && !event.snapshot) return state
      return {
        ...state,
        progress: event.snapshot ?? state.progress,
        ...(step === null ? {} : { milestone: step, announcement: `Upload ${step}% done` }),
      }
    }

    case 'alreadyUploaded':
      if (!ENGINE_LIVE.has(state.phase) || event.parts <= 0) return state
      return { ...state, announcement: `${event.parts} parts were already stored; sending the rest` }

    case 'pauseChanged':
      // Also from `completing`: if the engine says it paused there, the person needs Resume.
      if (!ENGINE_LIVE.has(state.phase)) return state
      return {
        ...state,
        phase: event.paused ? 'paused' : 'uploading',
        announcement: event.paused ? 'Upload paused' : 'Upload resumed',
      }

    case 'completing':
      if (state.phase !== 'uploading' && state.phase !== 'paused') return state
      return { ...state, phase: 'completing' }

    case 'uploadCompleted':
      if (!ENGINE_LIVE.has(state.phase) || !state.file) return state
      return {
        ...state,
        phase: 'uploaded',
        finished: { elapsedMs: event.elapsedMs, bytes: state.file.size },
        resumable: false,
        progress: state.progress
          ? { ...state.progress, bytesDone: state.progress.bytesTotal, percent: 100, secondsLeft: 0 }
          : null,
        announcement: 'Upload complete; validation started',
        ...followStatus(state, event.target),
      }

    case 'uploadFailed':
      if (!ENGINE_LIVE.has(state.phase)) return state
      return { ...state, phase: 'failed', message: event.message, announcement: `Upload stopped: ${event.message}` }

    case 'cancelRequested':
      if (!canCancel(state.phase)) return state
      return { ...state, phase: 'cancelling' }

    case 'cancelSucceeded':
      if (state.phase !== 'cancelling') return state
      return { ...state, phase: 'cancelled', resumable: false, progress: null, announcement: 'Upload cancelled' }

    case 'cancelFailed':
      if (state.phase !== 'cancelling') return state
      return { ...state, phase: 'failed', message: `Could not cancel: ${event.reason}` }

    case 'statusRequested':
      return { ...state, ...followStatus(state, event.target) }

    case 'statusRefreshRequested':
      if (!state.statusTarget) return state
      return { ...state, pollNonce: state.pollNonce + 1 }

    case 'statusReceived':
      if (state.statusTarget?.uploadId !== event.uploadId) return state
      return { ...state, statusDoc: event.doc, pollError: null }

    case 'statusPollFailed':
      if (state.statusTarget?.uploadId !== event.uploadId) return state
      return { ...state, pollError: `Could not refresh the status: ${event.message}` }

    case 'resultsLinkReceived':
      if (state.statusTarget?.uploadId !== event.uploadId) return state
      return { ...state, resultsLink: event.link, resultsError: null }

    case 'resultsLinkFailed':
      // A link still held keeps working until it expires: it stays beside the message.
      if (state.statusTarget?.uploadId !== event.uploadId) return state
      return { ...state, resultsError: `Could not get the download link: ${event.message}` }
  }
}

/** Follow `target`'s status from a fresh poll; another upload's document and link are not shown meanwhile. */
function followStatus(
  state: UploadState,
  target: StatusTarget,
): Pick<UploadState, 'statusTarget' | 'pollNonce' | 'statusDoc' | 'pollError' | 'resultsLink' | 'resultsError'> {
  const same = state.statusTarget?.uploadId === target.uploadId
  return {
    statusTarget: { uploadId: target.uploadId, token: target.token },
    pollNonce: state.pollNonce + 1,
    statusDoc: same ? state.statusDoc : null,
    pollError: same ? state.pollError : null,
    resultsLink: same ? state.resultsLink : null,
    resultsError: same ? state.resultsError : null,
  }
}

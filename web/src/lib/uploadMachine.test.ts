import { describe, expect, it } from 'vitest'
import { ApiClient } from './api'
import type { ProgressSnapshot } from './progress'
import type { RecentUpload } from './storage'
import type { PreviewResponse, StatusDocument } from './types'
import {
  canCancel,
  canChooseFile,
  canPause,
  canResume,
  canStart,
  initialUploadState,
  isBusy,
  milestoneReached,
  showsUploadCard,
  uploadReducer,
  type Phase,
  type UploadEvent,
  type UploadState,
} from './uploadMachine'

const PHASES: Phase[] = [
  'idle',
  'checking',
  'rejected',
  'ready',
  'preparing',
  'uploading',
  'paused',
  'completing',
  'failed',
  'cancelling',
  'cancelled',
  'uploaded',
]
const NOT_BUSY: Phase[] = ['idle', 'checking', 'rejected', 'ready', 'failed', 'cancelled', 'uploaded']
const ENGINE_LIVE: Phase[] = ['uploading', 'paused', 'completing']

const api = new ApiClient('http://api.test', () => Promise.reject(new Error('no network in these tests')))
const file = new File([new Uint8Array(1000)], 'pagamentos.csv', { lastModified: 1 })
const target = { uploadId: 'u-1', token: 't-1' }
const link = { url: 'https://s3.test/results/u-1/totals.csv?X-Amz-Signature=x', expires_at: '2026-01-01T00:15:00Z' }
const halfway: ProgressSnapshot = { bytesDone: 500, bytesTotal: 1000, percent: 50, rate: 100, secondsLeft: 5 }

const preview: PreviewResponse = {
  encoding: 'utf-8',
  delimiter: ';',
  header: ['documento', 'valor'],
  columns: { document: 'documento', amount: 'valor' },
  rows: [],
  upload: { part_size: 8 * 1024 * 1024, part_count: 1 },
}

function statusDoc(uploadId: string, status: StatusDocument['status'] = 'processing'): StatusDocument {
  return {
    upload_id: uploadId,
    key: `uploads/${uploadId}.csv`,
    filename: 'pagamentos.csv',
    size: 1000,
    part_size: 8 * 1024 * 1024,
    part_count: 1,
    status,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    error: null,
    format: null,
    chunks: { total: 1, done: 0, failed: 0 },
    summary: null,
    first_errors: [],
    report_key: null,
  }
}

/** The state the page is in at `phase` (configured, a file chosen unless idle, one choice made). */
function inPhase(phase: Phase, over: Partial<UploadState> = {}): UploadState {
  return {
    ...initialUploadState(),
    api,
    phase,
    file: phase === 'idle' ? null : file,
    choice: 1,
    progress: ENGINE_LIVE.includes(phase) || phase === 'failed' || phase === 'cancelling' ? halfway : null,
    ...over,
  }
}

/** The phases in which `event` changes the state; in every other one the very same state comes back. */
function takenIn(event: UploadEvent, over: Partial<UploadState> = {}): Phase[] {
  return PHASES.filter((phase) => {
    const before = inPhase(phase, over)
    return uploadReducer(before, event) !== before
  })
}

describe('which phase takes which event (every other phase refuses it, same state back)', () => {
  const cases: [string, UploadEvent, Phase[], Partial<UploadState>?][] = [
    ['fileChosen', { type: 'fileChosen', file, resumable: false }, NOT_BUSY],
    ['fileChosen (cleared)', { type: 'fileChosen', file: null, resumable: false }, NOT_BUSY],
    ['fileChosen before config.json is read', { type: 'fileChosen', file, resumable: false }, [], { api: null }],
    ['previewAnswered', { type: 'previewAnswered', choice: 1, preview }, ['checking']],
    ['previewAnswered for an earlier choice', { type: 'previewAnswered', choice: 0, preview }, []],
    ['previewFailed', { type: 'previewFailed', choice: 1, message: 'no' }, ['checking']],
    ['previewFailed for an earlier choice', { type: 'previewFailed', choice: 0, message: 'no' }, []],
    ['uploadRequested', { type: 'uploadRequested' }, ['ready', 'failed']],
    ['uploadRequested without a file', { type: 'uploadRequested' }, [], { file: null }],
    ['prepareFailed', { type: 'prepareFailed', message: 'no' }, ['preparing']],
    ['uploadStarted', { type: 'uploadStarted', resumed: false, recent: [] }, ['preparing']],
    ['progressed', { type: 'progressed', bytesDone: 600, bytesTotal: 1000, snapshot: halfway }, ENGINE_LIVE],
    ['alreadyUploaded', { type: 'alreadyUploaded', parts: 2 }, ENGINE_LIVE],
    ['alreadyUploaded with no part', { type: 'alreadyUploaded', parts: 0 }, []],
    ['pauseChanged', { type: 'pauseChanged', paused: true }, ENGINE_LIVE],
    ['completing', { type: 'completing' }, ['uploading', 'paused']],
    ['uploadCompleted', { type: 'uploadCompleted', elapsedMs: 1, target }, ENGINE_LIVE],
    ['uploadFailed', { type: 'uploadFailed', message: 'no' }, ENGINE_LIVE],
    ['cancelRequested', { type: 'cancelRequested' }, ['uploading', 'paused', 'failed']],
    ['cancelSucceeded', { type: 'cancelSucceeded' }, ['cancelling']],
    ['cancelFailed', { type: 'cancelFailed', reason: 'no' }, ['cancelling']],
    ['statusRequested', { type: 'statusRequested', target }, PHASES],
    ['statusRefreshRequested', { type: 'statusRefreshRequested' }, PHASES, { statusTarget: target }],
    ['statusRefreshRequested with no status followed', { type: 'statusRefreshRequested' }, []],
    ['statusReceived', { type: 'statusReceived', uploadId: 'u-1', doc: statusDoc('u-1') }, PHASES, { statusTarget: target }],
    ['statusReceived for another upload', { type: 'statusReceived', uploadId: 'u-0', doc: statusDoc('u-0') }, [], { statusTarget: target }],
    ['statusPollFailed', { type: 'statusPollFailed', uploadId: 'u-1', message: 'no' }, PHASES, { statusTarget: target }],
    ['statusPollFailed for another upload', { type: 'statusPollFailed', uploadId: 'u-0', message: 'no' }, [], { statusTarget: target }],
    ['resultsLinkReceived', { type: 'resultsLinkReceived', uploadId: 'u-1', link }, PHASES, { statusTarget: target }],
    ['resultsLinkReceived for another upload', { type: 'resultsLinkReceived', uploadId: 'u-0', link }, [], { statusTarget: target }],
    ['resultsLinkFailed', { type: 'resultsLinkFailed', uploadId: 'u-1', message: 'no' }, PHASES, { statusTarget: target }],
    ['resultsLinkFailed for another upload', { type: 'resultsLinkFailed', uploadId: 'u-0', message: 'no' }, [], { statusTarget: target }],
    ['configLoaded', { type: 'configLoaded', api }, PHASES, { api: null }],
    ['configLoaded a second time', { type: 'configLoaded', api }, []],
    ['configFailed', { type: 'configFailed', message: 'no' }, PHASES, { api: null }],
    ['configFailed after it loaded', { type: 'configFailed', message: 'no' }, []],
  ]
  it.each(cases)('%s', (_name, event, phases, over) => {
    expect(takenIn(event, over)).toEqual(phases)
  })

  it('covers every event type', () => {
    const types = new Set(cases.map(([, event]) => event.type))
    const all: UploadEvent['type'][] = [
      'configLoaded', 'configFailed', 'fileChosen', 'previewAnswered', 'previewFailed', 'uploadRequested',
      'prepareFailed', 'uploadStarted', 'progressed', 'alreadyUploaded', 'pauseChanged', 'completing',
      'uploadCompleted', 'uploadFailed', 'cancelRequested', 'cancelSucceeded', 'cancelFailed', 'statusRequested',
      'statusRefreshRequested', 'statusReceived', 'statusPollFailed', 'resultsLinkReceived', 'resultsLinkFailed',
    ]
    expect([...types].sort()).toEqual([...all].sort())
  })
})

describe('configuration', () => {
  it('starts idle, unconfigured, with the recent uploads it is given', () => {
    const recent: RecentUpload[] = [{ upload_id: 'u-0', token: 't', filename: 'a.csv', size: 1, created_at: 'x' }]
    expect(initialUploadState(recent)).toMatchObject({ phase: 'idle', api: null, file: null, recent, announcement: '' })
  })
  it('keeps the client once read, or says why there is none', () => {
    const start = initialUploadState()
    expect(uploadReducer(start, { type: 'configLoaded', api }).api).toBe(api)
    expect(uploadReducer(start, { type: 'configFailed', message: 'config.json could not be loaded' }).configError).toBe(
      'config.json could not be loaded',
    )
  })
})

describe('choosing a file', () => {
  const dirty = inPhase('uploaded', {
    preview,
    progress: halfway,
    message: 'old',
    finished: { elapsedMs: 1, bytes: 1 },
    resumable: true,
  })

  it('checks a CSV: phase checking, the choice counted, what belonged to the last file cleared', () => {
    const next = uploadReducer(dirty, { type: 'fileChosen', file, resumable: true })
    expect(next).toMatchObject({ phase: 'checking', file, choice: 2, resumable: true })
    expect(next).toMatchObject({ preview: null, progress: null, message: null, finished: null })
  })
  it('refuses a file that is not a CSV, or empty, in words, before any request', () => {
    const txt = new File(['a;b\n'], 'notes.txt')
    expect(uploadReducer(dirty, { type: 'fileChosen', file: txt, resumable: true })).toMatchObject({
      phase: 'rejected',
      file: txt,
      message: '"notes.txt" is not a CSV file: choose a file whose name ends in .csv.',
      resumable: false,
    })
    const empty = new File([], 'empty.csv')
    expect(uploadReducer(dirty, { type: 'fileChosen', file: empty, resumable: false }).message).toBe(
      '"empty.csv" is empty: there is nothing to upload.',
    )
  })
  it('goes back to idle when the choice is cleared', () => {
    expect(uploadReducer(dirty, { type: 'fileChosen', file: null, resumable: false })).toMatchObject({
      phase: 'idle',
      file: null,
      preview: null,
    })
  })
  it('keeps the status followed and the recent list', () => {
    const following = inPhase('uploaded', { statusTarget: target, statusDoc: statusDoc('u-1'), pollNonce: 3 })
    const next = uploadReducer(following, { type: 'fileChosen', file, resumable: false })
    expect(next).toMatchObject({ statusTarget: target, pollNonce: 3, recent: following.recent })
    expect(next.statusDoc).toBe(following.statusDoc)
  })
  it('shows the preview when it answers for this choice, or says why the file was refused', () => {
    const checking = inPhase('checking')
    expect(uploadReducer(checking, { type: 'previewAnswered', choice: 1, preview })).toMatchObject({
      phase: 'ready',
      preview,
    })
    expect(uploadReducer(checking, { type: 'previewFailed', choice: 1, message: 'No document column' })).toMatchObject({
      phase: 'rejected',
      message: 'No document column',
    })
  })
})

describe('uploading', () => {
  it('prepares from ready: progress at zero of the file, last message and timing gone', () => {
    const ready = inPhase('ready', { message: 'x', finished: { elapsedMs: 1, bytes: 1 }, milestone: 50 })
    expect(uploadReducer(ready, { type: 'uploadRequested' })).toMatchObject({
      phase: 'preparing',
      message: null,
      finished: null,
      milestone: 0,
      progress: { bytesDone: 0, bytesTotal: 1000, percent: 0, rate: null, secondsLeft: null },
    })
  })
  it('prepares again after it failed (a fresh engine resumes from what S3 holds)', () => {
    const failed = inPhase('failed', { message: 'Storage refused a part (HTTP 500). Resume to try again.' })
    expect(uploadReducer(failed, { type: 'uploadRequested' })).toMatchObject({ phase: 'preparing', message: null })
  })
  it('fails with the reason when the upload cannot be prepared', () => {
    expect(uploadReducer(inPhase('preparing'), { type: 'prepareFailed', message: 'HTTP 500' })).toMatchObject({
      phase: 'failed',
      message: 'HTTP 500',
    })
  })
  it('uploads once the engine starts, says whether it resumes, and lists the upload', () => {
    const recent: RecentUpload[] = [{ upload_id: 'u-1', token: 't-1', filename: 'pagamentos.csv', size: 1000, created_at: 'x' }]
    const preparing = inPhase('preparing')
    expect(uploadReducer(preparing, { type: 'uploadStarted', resumed: false, recent })).toMatchObject({
      phase: 'uploading',
      announcement: 'Upload started',
      recent,
    })
    expect(uploadReducer(preparing, { type: 'uploadStarted', resumed: true, recent }).announcement).toBe(
      'Resuming the upload',
    )
  })
})

describe('progress', () => {
  const uploading = inPhase('uploading', { progress: halfway, milestone: 0 })
  const snapshot: ProgressSnapshot = { bytesDone: 100, bytesTotal: 1000, percent: 10, rate: 50, secondsLeft: 18 }

  it('repaints with the snapshot it is given', () => {
    expect(uploadReducer(uploading, { type: 'progressed', bytesDone: 100, bytesTotal: 1000, snapshot }).progress).toBe(
      snapshot,
    )
  })
  it('announces each 25 % step once, even between repaints', () => {
    const at30 = uploadReducer(uploading, { type: 'progressed', bytesDone: 300, bytesTotal: 1000, snapshot: null })
    expect(at30).toMatchObject({ milestone: 25, announcement: 'Upload 25% done', progress: halfway })
    const at40 = { type: 'progressed', bytesDone: 400, bytesTotal: 1000, snapshot: null } as const
    expect(uploadReducer(at30, at40)).toBe(at30) // no new step, no repaint: nothing renders
    expect(uploadReducer(at30, { type: 'progressed', bytesDone: 760, bytesTotal: 1000, snapshot: null })).toMatchObject({
      milestone: 75,
      announcement: 'Upload 75% done',
    })
  })
  it('says how many parts S3 already held', () => {
    expect(uploadReducer(uploading, { type: 'alreadyUploaded', parts: 3 }).announcement).toBe(
      '3 parts were already stored; sending the rest',
    )
  })
  it('leaves 100 % to the completion and counts the steps from 0 in each upload', () => {
    expect(milestoneReached(0, 999, 1000)).toBe(75)
    expect(milestoneReached(75, 1000, 1000)).toBeNull()
    expect(milestoneReached(0, 249, 1000)).toBeNull()
    expect(milestoneReached(0, 500, 1000)).toBe(50)
    expect(milestoneReached(50, 740, 1000)).toBeNull()
    expect(milestoneReached(0, 0, 0)).toBeNull()
  })
})

describe('pause, completion, failure', () => {
  it('pauses and resumes as the engine reports it', () => {
    const paused = uploadReducer(inPhase('uploading'), { type: 'pauseChanged', paused: true })
    expect(paused).toMatchObject({ phase: 'paused', announcement: 'Upload paused' })
    expect(uploadReducer(paused, { type: 'pauseChanged', paused: false })).toMatchObject({
      phase: 'uploading',
      announcement: 'Upload resumed',
    })
    // A pause the engine reports while finishing still leaves the person a Resume button.
    expect(uploadReducer(inPhase('completing'), { type: 'pauseChanged', paused: true }).phase).toBe('paused')
  })
  it('finishes: the sending is done', () => {
    expect(uploadReducer(inPhase('uploading'), { type: 'completing' }).phase).toBe('completing')
  })
  it('completes: bar full, time kept, nothing left to resume, the processing followed', () => {
    const completing = inPhase('completing', { resumable: true, pollNonce: 4, statusTarget: { uploadId: 'u-0', token: 't-0' } })
    const done = uploadReducer(completing, { type: 'uploadCompleted', elapsedMs: 12_345, target })
    expect(done).toMatchObject({
      phase: 'uploaded',
      finished: { elapsedMs: 12_345, bytes: 1000 },
      resumable: false,
      progress: { bytesDone: 1000, bytesTotal: 1000, percent: 100, rate: 100, secondsLeft: 0 },
      announcement: 'Upload complete; validation started',
      statusTarget: target,
      pollNonce: 5,
      statusDoc: null,
    })
  })
  it('stops with the words the engine gave, and announces them', () => {
    const words = 'The connection to storage failed repeatedly. Resume to try again.'
    expect(uploadReducer(inPhase('uploading'), { type: 'uploadFailed', message: words })).toMatchObject({
      phase: 'failed',
      message: words,
      announcement: `Upload stopped: ${words}`,
    })
  })
})

describe('cancel', () => {
  it('cancels: the parts are deleted, the bar emptied, nothing left to resume', () => {
    const cancelling = uploadReducer(inPhase('paused', { resumable: true }), { type: 'cancelRequested' })
    expect(cancelling.phase).toBe('cancelling')
    expect(uploadReducer(cancelling, { type: 'cancelSucceeded' })).toMatchObject({
      phase: 'cancelled',
      resumable: false,
      progress: null,
      announcement: 'Upload cancelled',
    })
  })
  it('says so when the cancel failed', () => {
    expect(uploadReducer(inPhase('cancelling'), { type: 'cancelFailed', reason: 'HTTP 500' })).toMatchObject({
      phase: 'failed',
      message: 'Could not cancel: HTTP 500',
    })
  })
  it('ignores what the engine says while it is being cancelled', () => {
    const cancelling = inPhase('cancelling')
    for (const event of [
      { type: 'uploadFailed', message: 'aborted' },
      { type: 'uploadCompleted', elapsedMs: 1, target },
      { type: 'pauseChanged', paused: true },
      { type: 'progressed', bytesDone: 1000, bytesTotal: 1000, snapshot: halfway },
    ] satisfies UploadEvent[]) {
      expect(uploadReducer(cancelling, event)).toBe(cancelling)
    }
  })
})

describe('the status followed', () => {
  it('follows an upload from a fresh poll, without the document of the one followed before', () => {
    const following = inPhase('idle', { statusTarget: { uploadId: 'u-0', token: 't-0' }, statusDoc: statusDoc('u-0'), pollError: 'x' })
    expect(uploadReducer(following, { type: 'statusRequested', target })).toMatchObject({
      statusTarget: target,
      pollNonce: 1,
      statusDoc: null,
      pollError: null,
    })
  })
  it('keeps the document while the same upload is polled again from the start', () => {
    const doc = statusDoc('u-1')
    const following = inPhase('idle', { statusTarget: target, statusDoc: doc, pollNonce: 2 })
    const again = uploadReducer(following, { type: 'statusRequested', target })
    expect(again.statusDoc).toBe(doc)
    expect(again.pollNonce).toBe(3)
    expect(uploadReducer(following, { type: 'statusRefreshRequested' })).toMatchObject({ pollNonce: 3, statusDoc: doc })
  })
  it('shows each answer, and a failed poll in words until the next answer', () => {
    const following = inPhase('idle', { statusTarget: target })
    const failed = uploadReducer(following, { type: 'statusPollFailed', uploadId: 'u-1', message: 'offline' })
    expect(failed.pollError).toBe('Could not refresh the status: offline')
    const doc = statusDoc('u-1', 'completed')
    expect(uploadReducer(failed, { type: 'statusReceived', uploadId: 'u-1', doc })).toMatchObject({
      statusDoc: doc,
      pollError: null,
    })
  })
})

describe('the results link', () => {
  it('is held for the upload followed, and a failure is said in words beside it', () => {
    const following = inPhase('uploaded', { statusTarget: target, statusDoc: statusDoc('u-1', 'completed') })
    const linked = uploadReducer(following, { type: 'resultsLinkReceived', uploadId: 'u-1', link })
    expect(linked).toMatchObject({ resultsLink: link, resultsError: null })
    const failed = uploadReducer(linked, { type: 'resultsLinkFailed', uploadId: 'u-1', message: 'offline.' })
    expect(failed).toMatchObject({ resultsLink: link, resultsError: 'Could not get the download link: offline.' })
    const fresh = { ...link, url: 'https://s3.test/again' }
    expect(uploadReducer(failed, { type: 'resultsLinkReceived', uploadId: 'u-1', link: fresh })).toMatchObject({
      resultsLink: fresh,
      resultsError: null,
    })
  })
  it('goes when another upload is followed, and stays while the same one is polled again', () => {
    const following = inPhase('idle', { statusTarget: target, resultsLink: link, resultsError: 'x' })
    expect(uploadReducer(following, { type: 'statusRequested', target: { uploadId: 'u-2', token: 't-2' } })).toMatchObject({
      resultsLink: null,
      resultsError: null,
    })
    expect(uploadReducer(following, { type: 'statusRequested', target })).toMatchObject({ resultsLink: link, resultsError: 'x' })
  })
})

describe('what each phase allows', () => {
  it('agrees with the events the reducer takes', () => {
    expect(PHASES.filter(isBusy)).toEqual(['preparing', 'uploading', 'paused', 'completing', 'cancelling'])
    expect(PHASES.filter((p) => canChooseFile(inPhase(p)))).toEqual(takenIn({ type: 'fileChosen', file, resumable: false }))
    expect(canChooseFile(inPhase('idle', { api: null }))).toBe(false)
    expect(PHASES.filter(canStart)).toEqual(['ready'])
    expect(PHASES.filter(canPause)).toEqual(['uploading'])
    expect(PHASES.filter(canResume)).toEqual(['paused', 'failed'])
    expect(PHASES.filter(canCancel)).toEqual(takenIn({ type: 'cancelRequested' }))
    expect(PHASES.filter(showsUploadCard)).toEqual([
      'preparing',
      'uploading',
      'paused',
      'completing',
      'failed',
      'cancelling',
      'cancelled',
      'uploaded',
    ])
  })
})

import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { PreviewPanel } from './components/PreviewPanel'
import { RecentUploads } from './components/RecentUploads'
import { StatusPanel } from './components/StatusPanel'
import { Alert, Button, Card, CardTitle, ProgressBar } from './components/ui'
import { useStatusPoll } from './hooks'
import { ApiClient, describeError } from './lib/api'
import { loadConfig } from './lib/config'
import { fingerprint } from './lib/fingerprint'
import { formatBytes, formatDuration, formatPercent, formatRate } from './lib/format'
import { RateEstimator, type ProgressSnapshot } from './lib/progress'
import { browserStorage, UploadStore, type RecentUpload } from './lib/storage'
import type { PreviewResponse } from './lib/types'
import { ChecksumPool } from './lib/checksum'
import type { HeadStart } from './lib/headStart'
import { prepareSession, startHeadStart, UploadController } from './lib/uploader'
import { checkFile } from './lib/validate'

const PREVIEW_BYTES = 1024 * 1024
const PROGRESS_UI_INTERVAL_MS = 200

type Phase =
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

const PHASE_WORDS: Partial<Record<Phase, string>> = {
  checking: 'Checking the first rows…',
  preparing: 'Preparing the upload…',
  uploading: 'Uploading',
  paused: 'Paused',
  completing: 'Finishing the upload…',
  failed: 'Upload stopped',
  cancelling: 'Cancelling…',
  cancelled: 'Upload cancelled',
  uploaded: 'Upload complete',
}

export default function App() {
  const [api, setApi] = useState<ApiClient | null>(null)
  const [configError, setConfigError] = useState<string | null>(null)
  const store = useMemo(() => new UploadStore(browserStorage()), [])
  const [recent, setRecent] = useState<RecentUpload[]>(() => store.recent())

  const [file, setFile] = useState<File | null>(null)
  const [phase, setPhase] = useState<Phase>('idle')
  const [message, setMessage] = useState<string | null>(null)
  const [preview, setPreview] = useState<PreviewResponse | null>(null)
  const [resumable, setResumable] = useState(false)
  const [progress, setProgress] = useState<ProgressSnapshot | null>(null)
  const [announcement, setAnnouncement] = useState('')
  const [statusTarget, setStatusTarget] = useState<{ uploadId: string; token: string } | null>(null)
  const [pollNonce, setPollNonce] = useState(0)
  const [finished, setFinished] = useState<{ elapsedMs: number; bytes: number } | null>(null)

  const controllerRef = useRef<UploadController | null>(null)
  /** CRC32 workers started when a file is chosen, handed to the upload that starts */
  const poolRef = useRef<ChecksumPool | null>(null)
  /** the chosen file's first parts, read and checksummed while its preview is shown */
  const headStartRef = useRef<HeadStart | null>(null)
  /** the file chosen last: a preview answered for an earlier choice is dropped */
  const chosenRef = useRef<File | null>(null)
  const rateRef = useRef(new RateEstimator())
  const lastUiUpdate = useRef(0)
  const lastMilestone = useRef(0)
  const fileInputRef = useRef<HTMLInputElement>(null)

  useEffect(() => {
    loadConfig()
      .then((config) => setApi(new ApiClient(config.apiUrl)))
      .catch((error: unknown) => setConfigError(describeError(error)))
  }, [])

  useEffect(
    () => () => {
      controllerRef.current?.destroy()
      headStartRef.current?.close()
      poolRef.current?.close()
    },
    [],
  )

  const { doc, error: pollError } = useStatusPoll(api, statusTarget, pollNonce)

  const busy = phase === 'preparing' || phase === 'uploading' || phase === 'paused' || phase === 'completing' || phase === 'cancelling'

  const chooseFile = useCallback(
    async (chosen: File | null) => {
      controllerRef.current?.destroy()
      controllerRef.current = null
      headStartRef.current?.close()
      headStartRef.current = null
      chosenRef.current = chosen
      setPreview(null)
      setProgress(null)
      setMessage(null)
      setFile(chosen)
      if (!chosen) {
        setPhase('idle')
        return
      }
      const problem = checkFile(chosen)
      if (problem) {
        setPhase('rejected')
        setMessage(problem.message)
        return
      }
      if (!api) return
      poolRef.current ??= new ChecksumPool()
      setResumable(store.loadSession(fingerprint(chosen)) !== null)
      setPhase('checking')
      try {
        const result = await api.preview(chosen.slice(0, PREVIEW_BYTES), chosen.size)
        if (chosenRef.current !== chosen) return
        if (result.upload && poolRef.current) {
          headStartRef.current = startHeadStart(chosen, result.upload, poolRef.current)
        }
        setPreview(result)
        setPhase('ready')
      } catch (error) {
        if (chosenRef.current !== chosen) return
        setPhase('rejected')
        setMessage(describeError(error))
      }
    },
    [api, store],
  )

  const onProgress = useCallback((done: number, total: number) => {
    const now = performance.now()
    rateRef.current.add(now, done)
    const pct = total > 0 ? Math.floor((done / total) * 100) : 0
    if (pct >= lastMilestone.current + 25 && pct < 100) {
      lastMilestone.current = pct - (pct % 25)
      setAnnouncement(`Upload ${lastMilestone.current}% done`)
    }
    if (now - lastUiUpdate.current < PROGRESS_UI_INTERVAL_MS && done < total) return
    lastUiUpdate.current = now
    setProgress(rateRef.current.snapshot(done, total))
  }, [])

  const startUpload = useCallback(async () => {
    if (!api || !file) return
    setMessage(null)
    setFinished(null)
    setPhase('preparing')
    const startedAt = performance.now()
    rateRef.current.reset()
    lastMilestone.current = 0
    setProgress({ bytesDone: 0, bytesTotal: file.size, percent: 0, rate: null, secondsLeft: null })
    const head = headStartRef.current
    headStartRef.current = null
    let prepared
    try {
      prepared = await prepareSession(api, store, file, head)
    } catch (error) {
      head?.close()
      setPhase('failed')
      setMessage(describeError(error))
      return
    }
    setRecent(store.recent())
    const fp = fingerprint(file)
    const pool = poolRef.current ?? undefined
    poolRef.current = null
    const controller = new UploadController(
      api,
      file,
      prepared,
      {
        onProgress,
        onAlreadyUploaded: (bytes, parts) => {
          if (parts > 0) {
            setAnnouncement(`${parts} parts were already stored; sending the rest`)
            onProgress(bytes, file.size)
          }
        },
        onPaused: (paused) => {
          rateRef.current.reset()
          setPhase(paused ? 'paused' : 'uploading')
          setAnnouncement(paused ? 'Upload paused' : 'Upload resumed')
        },
        onCompleting: () => setPhase('completing'),
        onComplete: () => {
          setFinished({ elapsedMs: performance.now() - startedAt, bytes: file.size })
          store.forgetSession(fp)
          setResumable(false)
          setPhase('uploaded')
          setProgress((p) => (p ? { ...p, bytesDone: p.bytesTotal, percent: 100, secondsLeft: 0 } : p))
          setAnnouncement('Upload complete; validation started')
          setStatusTarget({ uploadId: prepared.session.upload_id, token: prepared.session.token })
          setPollNonce((n) => n + 1)
        },
        onError: (words) => {
          setPhase('failed')
          setMessage(words)
          setAnnouncement(`Upload stopped: ${words}`)
        },
      },
      pool,
      head,
    )
    controllerRef.current = controller
    setPhase('uploading')
    setAnnouncement(prepared.resumed ? 'Resuming the upload' : 'Upload started')
    controller.start()
  }, [api, file, store, onProgress])

  const pause = () => controllerRef.current?.pause()
  const resume = () => {
    if (phase === 'failed') {
      // After retries ran out: a fresh engine continues from what S3 already holds.
      controllerRef.current?.destroy()
      controllerRef.current = null
      void startUpload()
      return
    }
    controllerRef.current?.resume()
  }
  const cancel = async () => {
    const controller = controllerRef.current
    if (!controller || !file) return
    setPhase('cancelling')
    try {
      await controller.cancel()
      store.forgetSession(fingerprint(file))
      setResumable(false)
      setPhase('cancelled')
      setAnnouncement('Upload cancelled')
      setProgress(null)
    } catch (error) {
      setPhase('failed')
      setMessage(`Could not cancel: ${describeError(error)}`)
    } finally {
      controller.destroy()
      controllerRef.current = null
    }
  }

  const openRecent = (item: RecentUpload) => {
    setStatusTarget({ uploadId: item.upload_id, token: item.token })
    setPollNonce((n) => n + 1)
  }

  const showUploadCard = phase !== 'idle' && phase !== 'checking' && phase !== 'rejected' && phase !== 'ready'
  const pct = progress?.percent ?? 0
  const progressText = progress
    ? `${formatPercent(progress.bytesDone, progress.bytesTotal)} · ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}`
    : ''

  return (
    <div className="mx-auto flex min-h-screen max-w-5xl flex-col gap-6 px-4 py-8">
      <header className="flex items-baseline justify-between">
        <h1 className="text-2xl font-bold tracking-tight">
          <span className="text-indigo-600">up</span>flow
        </h1>
        <p className="text-sm text-slate-500">Large CSV uploads, validated row by row</p>
      </header>
      <div aria-live="polite" role="status" className="sr-only" data-testid="announcer">
        {announcement}
      </div>

      {configError && (
        <Alert title="The page is not configured" testId="config-error">
          {configError}
        </Alert>
      )}

      <Card aria-labelledby="choose-title">
        <CardTitle id="choose-title">Upload a CSV</CardTitle>
        <label htmlFor="file-input" className="mb-2 block text-sm font-medium text-slate-700">
          Choose a CSV file (up to 2 TB)
        </label>
        <input
          id="file-input"
          ref={fileInputRef}
          type="file"
          accept=".csv,text/csv"
          data-testid="file-input"
          disabled={busy || !api}
          aria-describedby="file-help"
          onChange={(e) => void chooseFile(e.target.files?.[0] ?? null)}
          className="block w-full cursor-pointer rounded-md border border-slate-300 text-sm text-slate-700 file:mr-4 file:cursor-pointer file:border-0 file:bg-indigo-50 file:px-4 file:py-2 file:font-medium file:text-indigo-700 hover:file:bg-indigo-100 disabled:cursor-not-allowed disabled:opacity-60"
        />
        <p id="file-help" className="mt-2 text-xs text-slate-500">
          The first rows are checked before anything is uploaded. An interrupted upload of the same file resumes where it
          stopped.
        </p>
        {file && phase === 'checking' && (
          <p className="mt-4 text-sm text-slate-600" data-testid="phase-text">
            Checking “{file.name}” ({formatBytes(file.size)})…
          </p>
        )}
        {phase === 'rejected' && message && (
          <div className="mt-4">
            <Alert title="This file cannot be uploaded" testId="error-message">
              {message}
            </Alert>
          </div>
        )}
        {phase === 'ready' && file && (
          <div className="mt-4 flex flex-wrap items-center gap-3">
            <Button onClick={() => void startUpload()} data-testid="start-button">
              {resumable ? 'Resume upload' : 'Start upload'}
            </Button>
            <span className="text-sm text-slate-600">
              {file.name} · {formatBytes(file.size)}
              {resumable && ' · an unfinished upload of this file was found: only the missing parts will be sent'}
            </span>
          </div>
        )}
      </Card>

      {preview && (phase === 'ready' || phase === 'preparing') && <PreviewPanel preview={preview} />}

      {showUploadCard && file && (
        <Card aria-labelledby="upload-title" data-testid="upload-panel">
          <CardTitle id="upload-title">Uploading “{file.name}”</CardTitle>
          <p
            className="mb-2 text-sm font-medium"
            data-testid="upload-phase"
            data-phase={phase}
            data-elapsed-ms={phase === 'uploaded' && finished ? Math.round(finished.elapsedMs) : undefined}
          >
            {PHASE_WORDS[phase] ?? phase}
            {phase === 'uploaded' && finished && (
              <span className="font-normal text-slate-600">
                {' '}
                in {finished.elapsedMs < 60_000 ? `${(finished.elapsedMs / 1000).toFixed(1)} s` : formatDuration(finished.elapsedMs / 1000)} ·{' '}
                {formatRate(finished.bytes / Math.max(finished.elapsedMs / 1000, 0.001))} on average
              </span>
            )}
          </p>
          <ProgressBar
            value={phase === 'cancelled' ? 0 : pct}
            label={`Upload progress of ${file.name}`}
            valueText={progressText}
            testId="progress-bar"
          />
          <div className="mt-2 flex flex-wrap justify-between gap-2 text-sm tabular-nums text-slate-600" data-testid="progress-text">
            <span>{progressText}</span>
            <span>
              {formatRate(phase === 'uploading' ? (progress?.rate ?? null) : null)} ·{' '}
              {phase === 'uploading' ? `${formatDuration(progress?.secondsLeft ?? null)} left` : '—'}
            </span>
          </div>
          {phase === 'failed' && message && (
            <div className="mt-4">
              <Alert title="The upload stopped" testId="error-message">
                {message}
              </Alert>
            </div>
          )}
          <div className="mt-4 flex flex-wrap gap-3">
            {phase === 'uploading' && (
              <Button variant="secondary" onClick={pause} data-testid="pause-button" aria-label="Pause the upload">
                Pause
              </Button>
            )}
            {(phase === 'paused' || phase === 'failed') && (
              <Button onClick={resume} data-testid="resume-button" aria-label="Resume the upload">
                Resume
              </Button>
            )}
            {(phase === 'uploading' || phase === 'paused' || phase === 'failed') && (
              <Button variant="danger" onClick={() => void cancel()} data-testid="cancel-button" aria-label="Cancel the upload and delete its parts">
                Cancel
              </Button>
            )}
          </div>
        </Card>
      )}

      {api && statusTarget && (
        <StatusPanel
          api={api}
          uploadId={statusTarget.uploadId}
          token={statusTarget.token}
          doc={doc}
          pollError={pollError}
          onRetried={() => setPollNonce((n) => n + 1)}
        />
      )}

      <RecentUploads items={recent} activeId={statusTarget?.uploadId ?? null} onOpen={openRecent} />
    </div>
  )
}

import { formatBytes, formatDuration, formatPercent, formatRate } from '../lib/format'
import type { ProgressSnapshot } from '../lib/progress'
import { canCancel, canPause, canResume, type FinishedUpload, type Phase } from '../lib/uploadMachine'
import { Alert, Button, Card, CardTitle, ProgressBar } from './ui'

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

/** The upload under way: its phase, progress, speed, why it stopped, and its controls. */
export function UploadPanel({
  file,
  phase,
  progress,
  finished,
  message,
  onPause,
  onResume,
  onCancel,
}: {
  file: File
  phase: Phase
  progress: ProgressSnapshot | null
  finished: FinishedUpload | null
  message: string | null
  onPause: () => void
  onResume: () => void
  onCancel: () => void
}) {
  const pct = progress?.percent ?? 0
  const progressText = progress
    ? `${formatPercent(progress.bytesDone, progress.bytesTotal)} · ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}`
    : ''
  return (
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
        {canPause(phase) && (
          <Button variant="secondary" onClick={onPause} data-testid="pause-button" aria-label="Pause the upload">
            Pause
          </Button>
        )}
        {canResume(phase) && (
          <Button onClick={onResume} data-testid="resume-button" aria-label="Resume the upload">
            Resume
          </Button>
        )}
        {canCancel(phase) && (
          <Button variant="danger" onClick={onCancel} data-testid="cancel-button" aria-label="Cancel the upload and delete its parts">
            Cancel
          </Button>
        )}
      </div>
    </Card>
  )
}

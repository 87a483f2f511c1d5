import { formatBytes } from '../lib/format'
import { canStart, type Phase } from '../lib/uploadMachine'
import { Alert, Button, Card, CardTitle } from './ui'

/** The file input, what the check found, and the button that starts the upload. */
export function FileChooser({
  file,
  phase,
  message,
  resumable,
  disabled,
  onChoose,
  onStart,
}: {
  file: File | null
  phase: Phase
  message: string | null
  resumable: boolean
  disabled: boolean
  onChoose: (file: File | null) => void
  onStart: () => void
}) {
  return (
    <Card aria-labelledby="choose-title">
      <CardTitle id="choose-title">Upload a CSV</CardTitle>
      <label htmlFor="file-input" className="mb-2 block text-sm font-medium text-slate-700">
        Choose a CSV file (up to 2 TB)
      </label>
      <input
        id="file-input"
        type="file"
        accept=".csv,text/csv"
        data-testid="file-input"
        disabled={disabled}
        aria-describedby="file-help"
        onChange={(e) => onChoose(e.target.files?.[0] ?? null)}
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
      {canStart(phase) && file && (
        <div className="mt-4 flex flex-wrap items-center gap-3">
          <Button onClick={onStart} data-testid="start-button">
            {resumable ? 'Resume upload' : 'Start upload'}
          </Button>
          <span className="text-sm text-slate-600">
            {file.name} · {formatBytes(file.size)}
            {resumable && ' · an unfinished upload of this file was found: only the missing parts will be sent'}
          </span>
        </div>
      )}
    </Card>
  )
}

// The page: renders the upload machine's state and wires the controls to its
// actions. What happens on each action lives in useUpload (lib/uploadMachine.ts,
// lib/uploadRunner.ts).
import { FileChooser } from './components/FileChooser'
import { PreviewPanel } from './components/PreviewPanel'
import { RecentUploads } from './components/RecentUploads'
import { ResultsPanel } from './components/ResultsPanel'
import { StatusPanel } from './components/StatusPanel'
import { Alert } from './components/ui'
import { UploadPanel } from './components/UploadPanel'
import { hasResults } from './lib/results'
import { canChooseFile, showsUploadCard } from './lib/uploadMachine'
import { useUpload } from './useUpload'

export default function App() {
  const { state, actions } = useUpload()
  const { api, file, phase, preview, statusTarget, statusDoc } = state

  return (
    <div className="mx-auto flex min-h-screen max-w-5xl flex-col gap-6 px-4 py-8">
      <header className="flex items-baseline justify-between">
        <h1 className="text-2xl font-bold tracking-tight">
          <span className="text-indigo-600">up</span>flow
        </h1>
        <p className="text-sm text-slate-500">Large CSV uploads, validated row by row</p>
      </header>
      <div aria-live="polite" role="status" className="sr-only" data-testid="announcer">
        {state.announcement}
      </div>

      {state.configError && (
        <Alert title="The page is not configured" testId="config-error">
          {state.configError}
        </Alert>
      )}

      <FileChooser
        file={file}
        phase={phase}
        message={state.message}
        resumable={state.resumable}
        disabled={!canChooseFile(state)}
        onChoose={actions.chooseFile}
        onStart={actions.start}
      />

      {preview && (phase === 'ready' || phase === 'preparing') && <PreviewPanel preview={preview} />}

      {showsUploadCard(phase) && file && (
        <UploadPanel
          file={file}
          phase={phase}
          progress={state.progress}
          finished={state.finished}
          message={state.message}
          onPause={actions.pause}
          onResume={actions.resume}
          onCancel={actions.cancel}
        />
      )}

      {api && statusTarget && (
        <StatusPanel
          api={api}
          uploadId={statusTarget.uploadId}
          token={statusTarget.token}
          doc={statusDoc}
          pollError={state.pollError}
          onRetried={actions.refreshStatus}
        />
      )}

      {statusTarget && statusDoc && hasResults(statusDoc) && (
        <ResultsPanel
          documentsTotal={statusDoc.documents_total ?? 0}
          topDocuments={statusDoc.top_documents ?? []}
          link={state.resultsLink}
          linkError={state.resultsError}
        />
      )}

      <RecentUploads
        items={state.recent}
        activeId={statusTarget?.uploadId ?? null}
        onOpen={(item) => actions.openStatus({ uploadId: item.upload_id, token: item.token })}
      />
    </div>
  )
}

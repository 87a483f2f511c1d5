// The upload page's state and actions for React. The machine is uploadMachine.ts,
// its effects UploadRunner (uploadRunner.ts); this hook makes one runner per page
// with the browser's dependencies, connects it on mount, disposes it on unmount,
// and re-renders on each state change (useSyncExternalStore).
import { useEffect, useMemo, useState, useSyncExternalStore } from 'react'
import { ApiClient } from './lib/api'
import { ChecksumPool } from './lib/checksum'
import { loadConfig } from './lib/config'
import { browserStorage, UploadStore } from './lib/storage'
import { prepareSession, startHeadStart, UploadController } from './lib/uploader'
import type { StatusTarget, UploadState } from './lib/uploadMachine'
import { UploadRunner, type UploadRunnerDeps } from './lib/uploadRunner'

export interface UploadActions {
  chooseFile(file: File | null): void
  start(): void
  pause(): void
  resume(): void
  cancel(): void
  /** follow the processing of an upload from the recent list */
  openStatus(target: StatusTarget): void
  /** poll the status again from the start (after failed chunks were retried) */
  refreshStatus(): void
}

/** The real world: config.json, localStorage, Uppy, CRC32 workers, the clock. */
export function browserUploadDeps(): UploadRunnerDeps {
  return {
    loadApi: async () => new ApiClient((await loadConfig()).apiUrl),
    store: new UploadStore(browserStorage()),
    prepare: prepareSession,
    createEngine: (api, file, prepared, events, pool, head) =>
      new UploadController(api, file, prepared, events, pool, head),
    createPool: () => new ChecksumPool(),
    startHeadStart,
    now: () => performance.now(),
    later: (fn, ms) => {
      const timer = setTimeout(fn, ms)
      return () => clearTimeout(timer)
    },
  }
}

export function useUpload(makeDeps: () => UploadRunnerDeps = browserUploadDeps): {
  state: UploadState
  actions: UploadActions
} {
  // One runner for the page's lifetime. Making one starts nothing (StrictMode may make two);
  // connect and dispose follow the mount, which StrictMode also repeats in development.
  const [runner] = useState(() => new UploadRunner(makeDeps()))
  useEffect(() => {
    runner.connect()
    return () => runner.dispose()
  }, [runner])
  const state = useSyncExternalStore(runner.subscribe, runner.getState)
  const actions = useMemo<UploadActions>(
    () => ({
      chooseFile: (file) => void runner.chooseFile(file),
      start: () => void runner.start(),
      pause: () => runner.pause(),
      resume: () => void runner.resume(),
      cancel: () => void runner.cancel(),
      openStatus: (target) => runner.openStatus(target),
      refreshStatus: () => runner.refreshStatus(),
    }),
    [runner],
  )
  return { state, actions }
}

import { useEffect, useRef, useState } from 'react'
import { describeError, type ApiClient } from './lib/api'
import { shouldKeepPolling } from './lib/status'
import type { StatusDocument } from './lib/types'

export const POLL_INTERVAL_MS = 1000

/** Poll GET /uploads/{id} every second until the status is final. `nonce` restarts it. */
export function useStatusPoll(
  api: ApiClient | null,
  target: { uploadId: string; token: string } | null,
  nonce: number,
): { doc: StatusDocument | null; error: string | null } {
  const [doc, setDoc] = useState<StatusDocument | null>(null)
  const [error, setError] = useState<string | null>(null)
  const uploadId = target?.uploadId ?? null
  const token = target?.token ?? null
  const lastId = useRef<string | null>(null)

  useEffect(() => {
    if (!api || !uploadId || !token) return
    if (lastId.current !== uploadId) {
      setDoc(null)
      setError(null)
      lastId.current = uploadId
    }
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const controller = new AbortController()
    const tick = async () => {
      try {
        const next = await api.status(uploadId, token, controller.signal)
        if (stopped) return
        setDoc(next)
        setError(null)
        if (!shouldKeepPolling(next)) return
      } catch (e) {
        if (stopped) return
        setError(`Could not refresh the status: ${describeError(e)}`)
      }
      timer = setTimeout(tick, POLL_INTERVAL_MS)
    }
    void tick()
    return () => {
      stopped = true
      controller.abort()
      if (timer) clearTimeout(timer)
    }
  }, [api, uploadId, token, nonce])

  return { doc, error }
}

// Coalesces per-part signing requests that arrive within a short window into
// one POST /uploads/{id}/parts (≤ 100 part numbers per call, per the API).

export interface SignedPart {
  url: string
  headers: Record<string, string>
  /** seconds until the URL expires (Uppy uses it as the PUT's timeout) */
  expiresIn: number | undefined
}

export type SignCall = (
  partNumbers: number[],
  checksums: Record<string, string> | undefined,
) => Promise<{ urls: Record<string, string>; headers?: Record<string, Record<string, string>>; expires_at: string }>

interface Waiter {
  partNumber: number
  checksum: string | undefined
  resolve: (p: SignedPart) => void
  reject: (e: unknown) => void
}

export const MAX_PARTS_PER_SIGN = 100

export class SignBatcher {
  private queue: Waiter[] = []
  private timer: ReturnType<typeof setTimeout> | null = null
  private readonly call: SignCall
  private readonly windowMs: number
  private readonly now: () => number

  constructor(call: SignCall, windowMs = 3, now: () => number = Date.now) {
    this.call = call
    this.windowMs = windowMs
    this.now = now
  }

  sign(partNumber: number, checksum?: string): Promise<SignedPart> {
    return new Promise<SignedPart>((resolve, reject) => {
      this.queue.push({ partNumber, checksum, resolve, reject })
      if (this.queue.length >= MAX_PARTS_PER_SIGN) this.flush()
      else if (this.timer == null) this.timer = setTimeout(() => this.flush(), this.windowMs)
    })
  }

  flush(): void {
    if (this.timer != null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    while (this.queue.length > 0) {
      // One call per distinct part number: a part retried twice in the window gets the same URL.
      const batch = this.queue.splice(0, MAX_PARTS_PER_SIGN)
      void this.send(batch)
    }
  }

  private async send(batch: Waiter[]): Promise<void> {
    const numbers = [...new Set(batch.map((w) => w.partNumber))].sort((a, b) => a - b)
    const checksums: Record<string, string> = {}
    for (const w of batch) if (w.checksum) checksums[String(w.partNumber)] = w.checksum
    try {
      const answer = await this.call(numbers, Object.keys(checksums).length ? checksums : undefined)
      const expiresIn = expirySeconds(answer.expires_at, this.now())
      for (const w of batch) {
        const key = String(w.partNumber)
        const url = answer.urls[key]
        if (!url) {
          w.reject(new Error(`the API returned no URL for part ${w.partNumber}`))
          continue
        }
        w.resolve({ url, headers: signedHeaders(answer.headers?.[key], w.checksum), expiresIn })
      }
    } catch (error) {
      for (const w of batch) w.reject(error)
    }
  }
}

/** The headers a checksummed URL was signed with: the API's when it sends them, else built. */
export function signedHeaders(fromApi: Record<string, string> | undefined, checksum: string | undefined): Record<string, string> {
  if (fromApi && Object.keys(fromApi).length > 0) return { ...fromApi }
  if (!checksum) return {}
  return { 'x-amz-checksum-crc32': checksum, 'x-amz-sdk-checksum-algorithm': 'CRC32' }
}

export function expirySeconds(expiresAt: string | undefined, nowMs: number): number | undefined {
  if (!expiresAt) return undefined
  const t = Date.parse(expiresAt)
  if (Number.isNaN(t)) return undefined
  const seconds = Math.floor((t - nowMs) / 1000)
  return seconds > 5 ? seconds : undefined
}

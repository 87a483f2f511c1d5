// Speed and time-left from (time, bytes) samples: a sliding window, so a
// pause or a burst of retries does not leave a stale average behind.

export interface ProgressSnapshot {
  bytesDone: number
  bytesTotal: number
  percent: number
  /** bytes per second over the window, null until there is enough to say */
  rate: number | null
  /** seconds left at that rate, null when unknown */
  secondsLeft: number | null
}

export class RateEstimator {
  private samples: { t: number; bytes: number }[] = []
  private readonly windowMs: number

  constructor(windowMs = 5000) {
    this.windowMs = windowMs
  }

  /** Forget history (after a pause: the idle time must not drag the speed down). */
  reset(): void {
    this.samples = []
  }

  add(tMs: number, bytesDone: number): void {
    const last = this.samples[this.samples.length - 1]
    if (last && bytesDone < last.bytes) this.samples = [] // went backwards (a part restarted)
    this.samples.push({ t: tMs, bytes: bytesDone })
    const cutoff = tMs - this.windowMs
    while (this.samples.length > 2 && this.samples[0]!.t < cutoff) this.samples.shift()
  }

  rate(): number | null {
    if (this.samples.length < 2) return null
    const first = this.samples[0]!
    const last = this.samples[this.samples.length - 1]!
    const dt = (last.t - first.t) / 1000
    if (dt < 0.25) return null
    return (last.bytes - first.bytes) / dt
  }

  snapshot(bytesDone: number, bytesTotal: number): ProgressSnapshot {
    const rate = this.rate()
    const left = bytesTotal - bytesDone
    return {
      bytesDone,
      bytesTotal,
      percent: bytesTotal > 0 ? Math.min(100, Math.floor((bytesDone / bytesTotal) * 100)) : 0,
      rate,
      secondsLeft: rate && rate > 0 ? left / rate : left === 0 ? 0 : null,
    }
  }
}

/** Part numbers 1..count that S3 does not already hold. */
export function missingParts(partCount: number, uploaded: Iterable<number>): number[] {
  const have = new Set(uploaded)
  const out: number[] = []
  for (let n = 1; n <= partCount; n++) if (!have.has(n)) out.push(n)
  return out
}

/** [start, end) byte range of 1-based part n under the server's part size. */
export function partRange(partNumber: number, partSize: number, fileSize: number): [number, number] {
  const start = (partNumber - 1) * partSize
  return [start, Math.min(fileSize, start + partSize)]
}

export function partCount(fileSize: number, partSize: number): number {
  return Math.max(1, Math.ceil(fileSize / partSize))
}

/** Retry backoff: base·2^attempt, capped, with up to 25% jitter (random in [0,1)). */
export function backoffDelays(attempts: number, baseMs = 500, capMs = 15000, random: () => number = Math.random): number[] {
  const out: number[] = [0]
  for (let i = 0; i < attempts - 1; i++) {
    const d = Math.min(capMs, baseMs * 2 ** i)
    out.push(Math.round(d * (1 + 0.25 * random())))
  }
  return out
}

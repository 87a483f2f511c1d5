// Signs part URLs ahead. Checksums of the next parts are computed in the
// background (CRC32 workers) while earlier parts upload. One sign call is in
// flight at a time: the parts Uppy asked for meanwhile, plus the following
// parts whose checksums are already known, go into the next
// POST /uploads/{id}/parts (≤ 100). When fewer than half a batch of URLs is left
// signed ahead, the next batch is signed in the background, so a part seldom waits
// for a sign call (each one otherwise held up the parts asked meanwhile: measured as
// 1–3 of the 6 upload slots idle for 100–300 ms every 16 parts). Most parts thus
// find a URL ready, the API sees one call per batch instead of one per part, and
// the first PUT does not wait for a whole batch of checksums. A URL is handed out once: a second
// request for the same part is a retry and gets a fresh signature, and so does
// a cached URL close to its expiry.
import { expirySeconds, signedHeaders, type SignAnswer, type SignCall, type SignedPart } from './signing'

export const SIGN_AHEAD = 16
/** Re-sign a cached URL that has less than this left. */
export const EXPIRY_MARGIN_S = 60

interface Entry {
  part: SignedPart
  expiresAtMs: number | null
}

export interface PartSignerOptions {
  partSize: number
  partCount: number
  /** the bytes of part n (1-based), for checksumming parts ahead */
  slice: (partNumber: number) => Blob
  /** base64 CRC32 of part `partNumber` (`blob`), or null when the upload does not use checksums */
  checksum: ((blob: Blob, partNumber: number) => Promise<string>) | null
  call: SignCall
  ahead?: number
  now?: () => number
}

export const MAX_PARTS_PER_CALL = 100

export class PartSigner {
  private readonly partCount: number
  private readonly ahead: number
  /** fewer URLs than this signed ahead: sign the next batch in the background */
  private readonly lowWater: number
  private readonly now: () => number
  private readonly slice: (partNumber: number) => Blob
  private readonly checksum: ((blob: Blob, partNumber: number) => Promise<string>) | null
  private readonly call: SignCall
  private readonly cache = new Map<number, Entry>()
  private readonly handedOut = new Set<number>()
  private readonly skip = new Set<number>()
  private readonly sums = new Map<number, Promise<string>>()
  private readonly ready = new Set<number>()
  private readonly requested = new Set<number>()
  private readonly failures = new Map<number, unknown>()
  /** per part requested: resolved once the sign call that took it has answered */
  private readonly waiters = new Map<number, { done: Promise<void>; settle: () => void }>()
  private pump: Promise<void> | null = null
  /** sign calls made (for tests and diagnostics) */
  calls = 0

  constructor(opts: PartSignerOptions) {
    this.partCount = opts.partCount
    this.ahead = opts.ahead ?? SIGN_AHEAD
    this.lowWater = Math.ceil(this.ahead / 2)
    this.now = opts.now ?? Date.now
    this.slice = opts.slice
    this.checksum = opts.checksum
    this.call = opts.call
  }

  /** Parts S3 already holds: never checksummed nor signed ahead. */
  markStored(partNumbers: Iterable<number>): void {
    for (const n of partNumbers) this.skip.add(n)
  }

  async sign(partNumber: number, body: Blob): Promise<SignedPart> {
    if (this.handedOut.has(partNumber)) {
      // A retry: its URL may have expired or been refused; never reuse it.
      this.cache.delete(partNumber)
      this.handedOut.delete(partNumber)
    }
    void this.checksumOf(partNumber, body)?.catch(() => undefined)
    this.prefetch(partNumber)
    let entry = this.fresh(partNumber)
    for (let attempt = 0; !entry && attempt < 2; attempt++) {
      await this.request(partNumber)
      // Just signed: use it even if the server's expiry is shorter than our margin.
      entry = this.cache.get(partNumber) ?? null
      const failure = this.failures.get(partNumber)
      this.failures.delete(partNumber)
      if (!entry && failure !== undefined) throw failure
    }
    if (!entry) throw new Error(`the API returned no URL for part ${partNumber}`)
    this.cache.delete(partNumber)
    this.handedOut.add(partNumber)
    this.refill(partNumber)
    const expiresIn =
      entry.expiresAtMs == null ? undefined : expirySeconds(new Date(entry.expiresAtMs).toISOString(), this.now())
    return { ...entry.part, expiresIn }
  }

  private fresh(partNumber: number): Entry | null {
    const entry = this.cache.get(partNumber)
    if (!entry) return null
    if (entry.expiresAtMs != null && entry.expiresAtMs - this.now() < EXPIRY_MARGIN_S * 1000) {
      this.cache.delete(partNumber)
      return null
    }
    return entry
  }

  private waiting(n: number): boolean {
    return !this.skip.has(n) && !this.handedOut.has(n) && !this.cache.has(n) && !this.requested.has(n)
  }

  private checksumOf(n: number, body?: Blob): Promise<string> | null {
    if (!this.checksum) return null
    return this.sums.get(n) ?? this.remember(n, this.checksum(body ?? this.slice(n), n))
  }

  private remember(n: number, sum: Promise<string>): Promise<string> {
    this.sums.set(n, sum)
    sum.then(
      () => this.ready.add(n),
      () => this.sums.delete(n), // computed again when next needed
    )
    return sum
  }

  /**
   * Part `n`'s checksum, computed before the upload started (the head start): used
   * as if this signer had asked for it. Ignored when the upload has no checksums.
   */
  seedChecksum(n: number, sum: Promise<string>): void {
    if (!this.checksum || this.sums.has(n) || n < 1 || n > this.partCount) return
    void this.remember(n, sum).catch(() => undefined)
  }

  /** The checksum of part `n` this signer computed or was given, if any (for complete). */
  knownChecksum(n: number): Promise<string> | undefined {
    return this.sums.get(n)
  }

  /** URLs signed outside this signer (POST /uploads answers the first parts'), cached as if it had. */
  seedSigned(answer: SignAnswer, checksums: Record<string, string> | undefined): void {
    this.keep(Object.keys(answer.urls).map(Number), answer, checksums)
  }

  private keep(numbers: number[], answer: SignAnswer, checksums: Record<string, string> | undefined): void {
    const parsed = answer.expires_at ? Date.parse(answer.expires_at) : Number.NaN
    for (const n of numbers) {
      const url = answer.urls[String(n)]
      if (!url) continue
      const headers = signedHeaders(answer.headers?.[String(n)], checksums?.[String(n)])
      this.cache.set(n, {
        part: { url, headers, expiresIn: undefined },
        expiresAtMs: Number.isNaN(parsed) ? null : parsed,
      })
    }
  }

  /**
   * Start the checksums of the parts among the next `ahead` that nobody has asked
   * for yet. The window is counted from `partNumber`, signed parts included, so
   * the parts read ahead (and their bytes, kept for the PUT) stay within `ahead`.
   */
  private prefetch(partNumber: number): void {
    if (!this.checksum) return
    for (let n = partNumber + 1; n <= this.partCount && n <= partNumber + this.ahead; n++) {
      if (this.waiting(n)) void this.checksumOf(n)?.catch(() => undefined)
    }
  }

  /**
   * Sign the next batch now when fewer than `lowWater` URLs after `from` are signed
   * ahead and no call is in flight: the first part still to sign (its checksum known)
   * is asked for, and `plan` fills the batch with the ready parts after it.
   */
  private refill(from: number): void {
    if (this.pump || this.ahead === 0) return
    let signedAhead = 0
    let next: number | null = null
    for (let n = from + 1; n <= this.partCount && n <= from + this.ahead; n++) {
      if (this.fresh(n)) signedAhead++
      else if (next === null && this.waiting(n) && (!this.checksum || this.ready.has(n))) next = n
    }
    if (signedAhead >= this.lowWater || next === null) return
    // A failure is kept for `next` and only read if nothing signs it later (see `sign`).
    void this.request(next).catch(() => undefined)
  }

  /**
   * Ask for `partNumber` in the next sign call; resolves when the call that took it
   * has answered, not when the pump has run dry: a part signed by the first call
   * must not wait for the calls queued behind it (seen in a timeline: part 1's URL,
   * signed by the first call, was held ~150 ms until a third call had answered).
   */
  private request(partNumber: number): Promise<void> {
    this.requested.add(partNumber)
    let waiter = this.waiters.get(partNumber)
    if (!waiter) {
      let settle: () => void = () => undefined
      const done = new Promise<void>((resolve) => (settle = resolve))
      waiter = { done, settle }
      this.waiters.set(partNumber, waiter)
    }
    this.startPump()
    return waiter.done
  }

  private startPump(): void {
    this.pump ??= this.runPump().finally(() => {
      this.pump = null
      // Asked for after the loop's last look: start again rather than strand it.
      if (this.requested.size > 0) this.startPump()
    })
  }

  /** `n` is handled (signed, or its failure recorded): release whoever waits for it. */
  private handled(n: number): void {
    this.requested.delete(n)
    const waiter = this.waiters.get(n)
    this.waiters.delete(n)
    waiter?.settle()
  }

  /**
   * One sign call at a time: the parts requested meanwhile, plus the parts
   * ahead whose checksums are ready, go into the next call.
   */
  private async runPump(): Promise<void> {
    while (this.requested.size > 0) {
      for (const n of this.requested) if (this.fresh(n)) this.handled(n)
      const asked = [...this.requested].sort((a, b) => a - b).slice(0, MAX_PARTS_PER_CALL)
      if (asked.length === 0) break
      const numbers = this.plan(asked)
      let checksums: Record<string, string> | undefined
      try {
        if (this.checksum) {
          const values = await Promise.all(numbers.map((n) => this.checksumOf(n)))
          checksums = Object.fromEntries(numbers.map((n, i) => [String(n), values[i]!]))
        }
        this.calls += 1
        this.keep(numbers, await this.call(numbers, checksums), checksums)
      } catch (error) {
        for (const n of asked) this.failures.set(n, error)
      } finally {
        for (const n of asked) this.handled(n)
      }
    }
  }

  /** The asked parts plus following parts that can be signed right now (checksum known). */
  plan(asked: number[]): number[] {
    const numbers = [...asked]
    const chosen = new Set(asked)
    const from = asked[0] ?? 1
    const limit = Math.min(MAX_PARTS_PER_CALL, asked.length + this.ahead)
    for (let n = from + 1; n <= this.partCount && numbers.length < limit; n++) {
      if (chosen.has(n) || !this.waiting(n)) continue
      if (this.checksum && !this.ready.has(n)) continue
      numbers.push(n)
    }
    return numbers.sort((a, b) => a - b)
  }
}

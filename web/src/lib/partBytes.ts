// Each part is read from the file once. The CRC32 worker that checksums a part
// ahead of its PUT hands the bytes back, and the PUT sends them, instead of the
// browser reading the file a second time for the request body. On the benchmark
// machine that took a bare page's PUTs from ~98 to
// ~119 MiB/s, and in upflow's page the browser process's CPU from ~4 to ~1.5
// seconds per 512 MiB (docs/performance.md).
//
// The parts checksummed ahead wait in memory for their PUT, up to a budget. A
// part that does not fit, or a retry (its bytes were already sent once), goes
// out as a file-backed Blob, read again: correct, only slower. Memory stays
// bounded whatever the part size: with 2 TB files the parts are ~200 MiB, and
// those parts never wait in memory.
import type { PartDigest } from './crc32'

/** At most this many bytes of parts read ahead wait in memory for their PUT. */
export const MAX_HELD_BYTES = 256 * 1024 * 1024

/**
 * The budget for `partSize` parts when up to `window` parts are read ahead or
 * asked for at once (sign-ahead + parts in flight): the whole window plus two,
 * so a part read ahead always fits while its predecessors upload — or
 * MAX_HELD_BYTES, whichever is less.
 */
export function heldBytesBudget(partSize: number, window: number): number {
  return Math.min(MAX_HELD_BYTES, (window + 2) * partSize)
}

/** Checksums `blob`; asked to keep the bytes, may return them (a worker read) or not. */
export type Digester = (blob: Blob, keepBytes: boolean) => Promise<PartDigest>

export class PartBytes {
  private readonly held = new Map<number, Uint8Array>()
  /** bytes held plus bytes being read to be held */
  private reserved = 0
  private closed = false

  constructor(
    private readonly digester: Digester,
    private readonly budget: number,
  ) {}

  /** The CRC32 of part `partNumber` (`blob`), keeping its bytes if the budget allows. */
  async checksum(partNumber: number, blob: Blob): Promise<string> {
    const keep = !this.closed && !this.held.has(partNumber) && this.reserved + blob.size <= this.budget
    if (!keep) return (await this.digester(blob, false)).checksum
    this.reserved += blob.size
    let kept = false
    try {
      const { checksum, bytes } = await this.digester(blob, true)
      if (bytes && bytes.byteLength === blob.size && !this.closed && !this.held.has(partNumber)) {
        this.held.set(partNumber, bytes)
        kept = true
      }
      return checksum
    } finally {
      if (!kept) this.reserved -= blob.size
    }
  }

  /** Keep `bytes`, read elsewhere (the head start), for part `partNumber`'s PUT if the budget allows. */
  hold(partNumber: number, bytes: Uint8Array): boolean {
    if (this.closed || this.held.has(partNumber) || this.reserved + bytes.byteLength > this.budget) return false
    this.held.set(partNumber, bytes)
    this.reserved += bytes.byteLength
    return true
  }

  /** The bytes of `partNumber` for its PUT, once; null when they were not kept. */
  take(partNumber: number): Uint8Array | null {
    const bytes = this.held.get(partNumber)
    if (!bytes) return null
    this.held.delete(partNumber)
    this.reserved -= bytes.byteLength
    return bytes
  }

  /** Bytes now waiting in memory (for tests and diagnostics). */
  get heldBytes(): number {
    let total = 0
    for (const bytes of this.held.values()) total += bytes.byteLength
    return total
  }

  /** Drop everything held; later reads keep nothing. */
  close(): void {
    this.closed = true
    for (const bytes of this.held.values()) this.reserved -= bytes.byteLength
    this.held.clear()
  }
}

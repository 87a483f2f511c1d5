// The head start: while the person reads the preview, the first parts of the file
// are read and checksummed (POST /preview?size=N answered the part plan). At the
// click, the checksums already known ride on POST /uploads, which answers those
// parts' URLs, so the first PUT starts when that call answers instead of after a
// part has been read, checksummed and signed. The bytes read are kept (within the
// same budget as the upload's read-ahead) and become the first PUTs' bodies.
import type { PartDigest } from './crc32'
import type { Digester } from './partBytes'
import { partRange } from './progress'
import type { PartPlan, SignRequest } from './types'

export interface HeadStartOptions {
  /** how many parts to read ahead (the parts first in flight) */
  parts: number
  /** at most this many bytes are kept for the PUTs; later parts are only checksummed */
  budget: number
}

/**
 * How many parts to read ahead of the click: the parts first in flight, but no more
 * bytes than the read-ahead budget (at least one part). With 8 MiB parts that is 6
 * parts (48 MiB); with the ~200 MiB parts of a 2 TB file, one: choosing a file must
 * not read gigabytes the person may never upload.
 */
export function headStartParts(partSize: number, inFlight: number, budget: number): number {
  return Math.max(1, Math.min(inFlight, Math.floor(budget / partSize)))
}

export class HeadStart {
  readonly plan: PartPlan
  private parts = new Map<number, Promise<PartDigest>>()
  private readonly done = new Map<number, string>()
  private over = false

  constructor(file: Blob, plan: PartPlan, digest: Digester, opts: HeadStartOptions) {
    this.plan = plan
    let kept = 0
    const last = Math.min(opts.parts, plan.part_count)
    for (let n = 1; n <= last; n++) {
      const [start, end] = partRange(n, plan.part_size, file.size)
      const keep = kept + (end - start) <= opts.budget
      if (keep) kept += end - start
      const read = digest(file.slice(start, end), keep)
      this.parts.set(n, read)
      read.then(
        ({ checksum }) => {
          if (!this.over) this.done.set(n, checksum)
        },
        () => undefined, // the upload computes it again
      )
    }
  }

  /** The parts checksummed so far, as POST /uploads's `sign`; null when none is yet. */
  signRequest(): SignRequest | null {
    if (this.over) return null
    const numbers = [...this.done.keys()].sort((a, b) => a - b)
    if (numbers.length === 0) return null
    return {
      part_size: this.plan.part_size,
      part_numbers: numbers,
      checksums: Object.fromEntries(numbers.map((n) => [String(n), this.done.get(n)!])),
    }
  }

  /** Every part read or being read, handed over once; the head start keeps nothing. */
  handOver(): Map<number, Promise<PartDigest>> {
    const parts = this.parts
    this.close()
    return parts
  }

  /** Drop what was read (another file was chosen, or the upload resumes another way). */
  close(): void {
    this.over = true
    this.parts = new Map()
    this.done.clear()
  }
}

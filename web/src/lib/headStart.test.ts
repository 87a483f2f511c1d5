import { describe, expect, it } from 'vitest'
import type { PartDigest } from './crc32'
import { HeadStart, headStartParts } from './headStart'

/** A digester whose reads finish when the test says, recording each slice and `keep`. */
function controlled() {
  const asked: { start: number; size: number; keep: boolean; finish: () => void; fail: () => void }[] = []
  const digest = (blob: Blob, keep: boolean): Promise<PartDigest> =>
    new Promise((resolve, reject) => {
      const first = (blob as Blob & { first?: number }).first ?? -1
      asked.push({
        start: first,
        size: blob.size,
        keep,
        finish: () => resolve({ checksum: `crc@${first}+${blob.size}`, bytes: keep ? new Uint8Array(blob.size) : null }),
        fail: () => reject(new Error('read failed')),
      })
    })
  return { digest, asked }
}

/** A file whose slices remember where they start. */
class SlicedFile extends Blob {
  override slice(start = 0, end = this.size): Blob {
    const piece = new Blob([new Uint8Array(Math.max(0, end - start))]) as Blob & { first?: number }
    piece.first = start
    return piece
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0))

describe('headStartParts', () => {
  const MiB = 1024 * 1024
  it('reads the parts first in flight, within the read-ahead budget, at least one', () => {
    expect(headStartParts(8 * MiB, 6, 192 * MiB)).toBe(6)
    expect(headStartParts(64 * MiB, 6, 256 * MiB)).toBe(4)
    expect(headStartParts(210 * MiB, 6, 256 * MiB)).toBe(1)
    expect(headStartParts(512 * MiB, 6, 256 * MiB)).toBe(1) // then only checksummed, not kept
  })
})

describe('HeadStart', () => {
  it('reads the first parts of the plan, keeping bytes within the budget', () => {
    const { digest, asked } = controlled()
    // 25 bytes in parts of 10: parts 1..3, the last one 5 bytes.
    new HeadStart(new SlicedFile([new Uint8Array(25)]), { part_size: 10, part_count: 3 }, digest, { parts: 6, budget: 20 })
    expect(asked.map((a) => [a.start, a.size, a.keep])).toEqual([
      [0, 10, true],
      [10, 10, true],
      [20, 5, false], // over the budget: only checksummed
    ])
  })

  it('asks POST /uploads to sign only the parts checksummed so far', async () => {
    const { digest, asked } = controlled()
    const head = new HeadStart(new SlicedFile([new Uint8Array(40)]), { part_size: 10, part_count: 4 }, digest, {
      parts: 3,
      budget: 100,
    })
    expect(asked).toHaveLength(3)
    expect(head.signRequest()).toBeNull()
    asked[1]!.finish()
    asked[2]!.fail()
    await flush()
    expect(head.signRequest()).toEqual({ part_size: 10, part_numbers: [2], checksums: { '2': 'crc@10+10' } })
    asked[0]!.finish()
    await flush()
    expect(head.signRequest()?.part_numbers).toEqual([1, 2])
  })

  it('hands its reads over once, finished or not, and keeps nothing after', async () => {
    const { digest, asked } = controlled()
    const head = new HeadStart(new SlicedFile([new Uint8Array(20)]), { part_size: 10, part_count: 2 }, digest, {
      parts: 6,
      budget: 100,
    })
    asked[0]!.finish()
    await flush()
    const parts = head.handOver()
    expect([...parts.keys()]).toEqual([1, 2])
    asked[1]!.finish()
    expect((await parts.get(2)!).checksum).toBe('crc@10+10')
    expect((await parts.get(1)!).bytes?.byteLength).toBe(10)
    expect(head.signRequest()).toBeNull()
    expect(head.handOver().size).toBe(0)
  })

  it('forgets everything when closed (another file was chosen)', async () => {
    const { digest, asked } = controlled()
    const head = new HeadStart(new SlicedFile([new Uint8Array(10)]), { part_size: 10, part_count: 1 }, digest, {
      parts: 6,
      budget: 100,
    })
    head.close()
    asked[0]!.finish()
    await flush()
    expect(head.signRequest()).toBeNull()
    expect(head.handOver().size).toBe(0)
  })
})

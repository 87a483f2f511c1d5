import { describe, expect, it } from 'vitest'
import type { PartDigest } from './crc32'
import { heldBytesBudget, MAX_HELD_BYTES, PartBytes } from './partBytes'

const MiB = 1024 * 1024

/** A digester that hands back the bytes when asked, recording what it was asked. */
function digester(opts: { giveBytes?: boolean; fail?: boolean } = {}) {
  const asked: boolean[] = []
  const run = async (blob: Blob, keep: boolean): Promise<PartDigest> => {
    asked.push(keep)
    if (opts.fail) throw new Error('read failed')
    const bytes = keep && opts.giveBytes !== false ? new Uint8Array(await blob.arrayBuffer()) : null
    return { checksum: `crc-${blob.size}`, bytes }
  }
  return { run, asked }
}

const part = (size: number, fill = 1) => new Blob([new Uint8Array(size).fill(fill)])

describe('PartBytes', () => {
  it('keeps the bytes read for the checksum and hands them out once', async () => {
    const d = digester()
    const bytes = new PartBytes(d.run, 100)
    expect(await bytes.checksum(1, part(40, 7))).toBe('crc-40')
    expect(bytes.heldBytes).toBe(40)
    const taken = bytes.take(1)
    expect(taken?.byteLength).toBe(40)
    expect(taken?.[0]).toBe(7)
    expect(bytes.take(1)).toBeNull() // a retry reads the file again
    expect(bytes.heldBytes).toBe(0)
  })

  it('keeps no more than the budget; a part that does not fit is only checksummed', async () => {
    const d = digester()
    const bytes = new PartBytes(d.run, 100)
    await Promise.all([bytes.checksum(1, part(40)), bytes.checksum(2, part(40)), bytes.checksum(3, part(40))])
    expect(d.asked).toEqual([true, true, false]) // reserved before the reads finish
    expect(bytes.heldBytes).toBe(80)
    expect(bytes.take(3)).toBeNull()
    bytes.take(1)
    await bytes.checksum(4, part(40)) // the budget freed by the PUT of part 1
    expect(bytes.take(4)?.byteLength).toBe(40)
  })

  it('releases the reservation when the read fails or returns no bytes', async () => {
    const failing = new PartBytes(digester({ fail: true }).run, 100)
    await expect(failing.checksum(1, part(60))).rejects.toThrow('read failed')
    const none = digester({ giveBytes: false })
    const bytes = new PartBytes(none.run, 100)
    await bytes.checksum(1, part(60))
    await bytes.checksum(2, part(60))
    expect(none.asked).toEqual([true, true]) // the first one's 60 bytes were not counted
    expect(bytes.heldBytes).toBe(0)
    expect(bytes.take(1)).toBeNull()
  })

  it('holds bytes read elsewhere (the head start) within the same budget', async () => {
    const d = digester()
    const bytes = new PartBytes(d.run, 100)
    expect(bytes.hold(1, new Uint8Array(60).fill(3))).toBe(true)
    expect(bytes.hold(1, new Uint8Array(10))).toBe(false) // already held
    expect(bytes.hold(2, new Uint8Array(50))).toBe(false) // 110 > 100
    expect(await bytes.checksum(3, part(40))).toBe('crc-40')
    expect(bytes.heldBytes).toBe(100)
    expect(bytes.take(1)?.[0]).toBe(3)
    expect(bytes.hold(2, new Uint8Array(50))).toBe(true)
    bytes.close()
    expect(bytes.hold(4, new Uint8Array(1))).toBe(false)
  })

  it('keeps nothing after close', async () => {
    const d = digester()
    const bytes = new PartBytes(d.run, 100)
    await bytes.checksum(1, part(10))
    bytes.close()
    expect(bytes.heldBytes).toBe(0)
    await bytes.checksum(2, part(10))
    expect(bytes.take(2)).toBeNull()
    expect(d.asked).toEqual([true, false])
  })

  it('budgets the read-ahead window, capped', () => {
    expect(heldBytesBudget(8 * MiB, 22)).toBe(24 * 8 * MiB)
    expect(heldBytesBudget(100 * MiB, 22)).toBe(MAX_HELD_BYTES)
    // the largest parts (2 TB in 10,000 parts) never wait in memory
    expect(heldBytesBudget(210 * MiB, 22)).toBeLessThan(2 * 210 * MiB)
  })
})

import { describe, expect, it } from 'vitest'
import { completionParts, type PartChecksumSources } from './uploader'

/** Sources that record which parts had to be read from the file again. */
function sources(known: Record<number, Promise<string>>, listed: Record<number, string>) {
  const computed: number[] = []
  const from: PartChecksumSources = {
    known: (n) => known[n],
    listed: (n) => listed[n],
    compute: async (n) => {
      computed.push(n)
      return `read(${n})`
    },
  }
  return { from, computed }
}

const uppyParts = [1, 2, 3, 4].map((n) => ({ PartNumber: n, ETag: `"e${n}"` }))

describe('completionParts', () => {
  it('sends every part with its CRC32: known, else listed by S3, else read from the file again', async () => {
    const { from, computed } = sources({ 1: Promise.resolve('sum(1)'), 2: Promise.resolve('sum(2)') }, { 3: 'listed(3)' })
    expect(await completionParts(uppyParts, from)).toEqual([
      { part_number: 1, etag: '"e1"', checksum_crc32: 'sum(1)' },
      { part_number: 2, etag: '"e2"', checksum_crc32: 'sum(2)' },
      { part_number: 3, etag: '"e3"', checksum_crc32: 'listed(3)' },
      { part_number: 4, etag: '"e4"', checksum_crc32: 'read(4)' }, // sent before a reload, S3 lists no checksum
    ])
    expect(computed).toEqual([4])
  })

  it('reads a part again when its checksum computed ahead failed', async () => {
    const failed = Promise.reject(new Error('read failed'))
    failed.catch(() => undefined)
    const { from, computed } = sources({ 1: failed }, {})
    expect(await completionParts(uppyParts.slice(0, 1), from)).toEqual([
      { part_number: 1, etag: '"e1"', checksum_crc32: 'read(1)' },
    ])
    expect(computed).toEqual([1])
  })

  it('sends no checksums for an upload without them, and no list when a part has no ETag', async () => {
    expect(await completionParts(uppyParts.slice(0, 2), null)).toEqual([
      { part_number: 1, etag: '"e1"' },
      { part_number: 2, etag: '"e2"' },
    ])
    const { from, computed } = sources({}, {})
    expect(await completionParts([{ PartNumber: 1, ETag: '"e1"' }, { PartNumber: 2 }], from)).toBeUndefined()
    expect(computed).toEqual([])
  })
})

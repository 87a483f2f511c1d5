import { describe, expect, it } from 'vitest'
import { parseConfig } from './config'
import { crc32, crc32Base64, crc32OfBlob, crc32OfBlobInWorker, crc32Update, digestInWorker } from './crc32'
import { backoffDelays, missingParts, partCount, partRange, RateEstimator } from './progress'
import { PartSigner } from './partSigner'
import { expirySeconds, signedHeaders } from './signing'
import { MemoryStorage, UploadStore, type SavedSession } from './storage'

const enc = new TextEncoder()

describe('crc32', () => {
  it('matches the IEEE check value', () => {
    expect(crc32(enc.encode('123456789'))).toBe(0xcbf43926)
    expect(crc32(new Uint8Array())).toBe(0)
  })
  it('is incremental', () => {
    const whole = crc32(enc.encode('hello, world; documento;valor'))
    const split = crc32Update(crc32Update(0, enc.encode('hello, world; ')), enc.encode('documento;valor'))
    expect(split).toBe(whole)
  })
  it('encodes big-endian base64 like S3', () => {
    expect(crc32Base64(0xcbf43926)).toBe('y/Q5Jg==')
    expect(crc32Base64(0)).toBe('AAAAAA==')
  })
  it('hashes a Blob across read slices', async () => {
    const bytes = new Uint8Array(9 * 1024 * 1024 + 3)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff
    expect(await crc32OfBlob(new Blob([bytes]))).toBe(crc32Base64(crc32(bytes)))
  })
})

/** A Blob whose slices keep their bytes at hand, so a synchronous reader can be faked in Node. */
class ByteBlob extends Blob {
  constructor(readonly data: Uint8Array) {
    super([data as Uint8Array<ArrayBuffer>])
  }
  override slice(start?: number, end?: number): Blob {
    return new ByteBlob(this.data.subarray(start ?? 0, end ?? this.data.length))
  }
}

class FakeFileReaderSync {
  static reads = 0
  readAsArrayBuffer(blob: Blob): ArrayBuffer {
    FakeFileReaderSync.reads += 1
    return (blob as ByteBlob).data.slice().buffer
  }
}

describe('crc32 in a worker (FileReaderSync)', () => {
  it('equals the plain CRC, read in 16 MiB pieces', async () => {
    const bytes = new Uint8Array(20 * 1024 * 1024 + 3)
    for (let i = 0; i < bytes.length; i += 997) bytes[i] = (i * 13) & 0xff
    FakeFileReaderSync.reads = 0
    expect(await crc32OfBlobInWorker(new ByteBlob(bytes), FakeFileReaderSync)).toBe(crc32Base64(crc32(bytes)))
    expect(FakeFileReaderSync.reads).toBe(2)
  })
  it('hands back the bytes it hashed when asked to keep them (one read)', async () => {
    const bytes = new Uint8Array(64 * 1024 + 5)
    for (let i = 0; i < bytes.length; i += 101) bytes[i] = (i * 7) & 0xff
    FakeFileReaderSync.reads = 0
    const kept = await digestInWorker(new ByteBlob(bytes), true, FakeFileReaderSync)
    expect(kept.checksum).toBe(crc32Base64(crc32(bytes)))
    expect(kept.bytes).toEqual(bytes)
    expect(FakeFileReaderSync.reads).toBe(1)
    const plain = await digestInWorker(new ByteBlob(bytes), false, FakeFileReaderSync)
    expect(plain).toEqual({ checksum: kept.checksum, bytes: null })
    // no FileReaderSync (main thread): a checksum, no bytes
    expect(await digestInWorker(new Blob([bytes]), true, undefined)).toEqual({ checksum: kept.checksum, bytes: null })
  })
  it('falls back to the asynchronous read where FileReaderSync is missing', async () => {
    const bytes = enc.encode('documento;valor\n52998224725;1,00\n')
    expect(await crc32OfBlobInWorker(new Blob([bytes]), undefined)).toBe(crc32Base64(crc32(bytes)))
  })
})

describe('part planning', () => {
  it('ranges follow the server part size', () => {
    const MiB = 1024 * 1024
    expect(partCount(20 * MiB, 8 * MiB)).toBe(3)
    expect(partRange(1, 8 * MiB, 20 * MiB)).toEqual([0, 8 * MiB])
    expect(partRange(3, 8 * MiB, 20 * MiB)).toEqual([16 * MiB, 20 * MiB])
    expect(partCount(1, 8 * MiB)).toBe(1)
  })
  it('lists the parts S3 does not have', () => {
    expect(missingParts(5, [1, 3, 5])).toEqual([2, 4])
    expect(missingParts(3, [])).toEqual([1, 2, 3])
    expect(missingParts(2, [1, 2, 7])).toEqual([])
  })
  it('backs off exponentially with bounded jitter', () => {
    expect(backoffDelays(5, 500, 15000, () => 0)).toEqual([0, 500, 1000, 2000, 4000])
    expect(backoffDelays(3, 500, 15000, () => 0.999)).toEqual([0, 625, 1250])
    expect(backoffDelays(10, 500, 3000, () => 0).at(-1)).toBe(3000)
  })
})

describe('RateEstimator', () => {
  it('needs a little history before it talks', () => {
    const r = new RateEstimator()
    r.add(0, 0)
    expect(r.rate()).toBeNull()
    r.add(100, 1000)
    expect(r.rate()).toBeNull()
  })
  it('computes speed and time left over the window', () => {
    const r = new RateEstimator(5000)
    for (let t = 0; t <= 10000; t += 500) r.add(t, t * 1000) // 1 MB/s
    expect(r.rate()).toBeCloseTo(1_000_000, -3)
    const snap = r.snapshot(10_000_000, 20_000_000)
    expect(snap.percent).toBe(50)
    expect(snap.secondsLeft).toBeCloseTo(10, 0)
  })
  it('restarts when progress goes backwards, and after reset', () => {
    const r = new RateEstimator()
    r.add(0, 0)
    r.add(1000, 5000)
    r.add(2000, 1000)
    expect(r.rate()).toBeNull()
    r.reset()
    expect(r.snapshot(0, 10).secondsLeft).toBeNull()
    expect(r.snapshot(10, 10).secondsLeft).toBe(0)
  })
})

describe('PartSigner', () => {
  const now = Date.parse('2030-01-01T00:00:00Z')
  const names = new WeakMap<Blob, string>()
  const blob = (n: number) => {
    const b = new Blob([`part-${n}`])
    names.set(b, `part-${n}`)
    return b
  }

  function setup(partCount: number, ahead = 4, expiresAt = '2030-01-01T00:15:00Z') {
    const calls: { numbers: number[]; checksums?: Record<string, string> }[] = []
    let clock = now
    const signer = new PartSigner({
      partSize: 10,
      partCount,
      slice: blob,
      checksum: async (b) => `crc(${names.get(b)})`,
      call: async (numbers, checksums) => {
        calls.push({ numbers, checksums })
        return {
          urls: Object.fromEntries(numbers.map((n) => [String(n), `https://s3/p${n}?v${calls.length}`])),
          expires_at: expiresAt,
        }
      },
      ahead,
      now: () => clock,
    })
    return { signer, calls, tick: (ms: number) => (clock += ms) }
  }

  it('signs the first part at once, then batches the parts whose checksums were computed meanwhile', async () => {
    const { signer, calls } = setup(10)
    const first = await signer.sign(1, blob(1))
    expect(calls[0]).toEqual({ numbers: [1], checksums: { '1': 'crc(part-1)' } })
    expect(first).toEqual({
      url: 'https://s3/p1?v1',
      headers: { 'x-amz-checksum-crc32': 'crc(part-1)', 'x-amz-sdk-checksum-algorithm': 'CRC32' },
      expiresIn: 900,
    })
    // Parts 2..5 were checksummed in the background while part 1 was signed.
    expect((await signer.sign(2, blob(2))).url).toBe('https://s3/p2?v2')
    expect(calls[1]!.numbers).toEqual([2, 3, 4, 5])
    expect(calls[1]!.checksums).toEqual({ '2': 'crc(part-2)', '3': 'crc(part-3)', '4': 'crc(part-4)', '5': 'crc(part-5)' })
    expect((await signer.sign(3, blob(3))).url).toBe('https://s3/p3?v2')
    expect(calls).toHaveLength(2) // two URLs (4, 5) still signed ahead: no call yet
  })

  it('signs the next batch in the background before the signed URLs run out', async () => {
    const { signer, calls } = setup(12)
    for (const n of [1, 2, 3]) await signer.sign(n, blob(n))
    expect(calls).toHaveLength(2)
    expect((await signer.sign(4, blob(4))).url).toBe('https://s3/p4?v2')
    // One URL (5) left ahead, under half a batch: the next batch is being signed already.
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(calls).toHaveLength(3)
    expect(calls[2]!.numbers[0]).toBe(6)
    expect((await signer.sign(5, blob(5))).url).toBe('https://s3/p5?v2')
    expect((await signer.sign(6, blob(6))).url).toBe('https://s3/p6?v3')
    expect(calls).toHaveLength(3) // part 6 found its URL ready
  })

  it('reads ahead no further than `ahead` parts past the part asked for', async () => {
    const asked: number[] = []
    const signer = new PartSigner({
      partSize: 10,
      partCount: 40,
      slice: blob,
      checksum: async (_b, n) => {
        asked.push(n)
        return `crc${n}`
      },
      call: async (numbers) => ({ urls: Object.fromEntries(numbers.map((n) => [String(n), `u${n}`])), expires_at: '' }),
      ahead: 4,
    })
    for (let n = 1; n <= 12; n++) {
      await signer.sign(n, blob(n))
      expect(Math.max(...asked)).toBeLessThanOrEqual(n + 4)
    }
    expect(new Set(asked).size).toBe(asked.length) // each part checksummed once
  })

  it('waits for a batch already signing the part instead of signing it twice', async () => {
    const { signer, calls } = setup(10)
    await signer.sign(1, blob(1))
    const [a, b] = await Promise.all([signer.sign(2, blob(2)), signer.sign(3, blob(3))])
    expect(a.url).toBe('https://s3/p2?v2')
    expect(b.url).toBe('https://s3/p3?v2')
    expect(calls).toHaveLength(2)
  })

  /** A signer without checksums nor read-ahead whose sign call number `held` waits for `release()`. */
  function heldSigner(partCount: number, held: number) {
    const calls: number[][] = []
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    const signer = new PartSigner({
      partSize: 1,
      partCount,
      slice: blob,
      checksum: null,
      ahead: 0,
      call: async (numbers) => {
        calls.push(numbers)
        if (calls.length === held) await gate
        return { urls: Object.fromEntries(numbers.map((n) => [String(n), `u${n}`])), expires_at: '' }
      },
    })
    return { signer, calls, release: () => release() }
  }

  it('coalesces the parts asked for during a sign call into the next call', async () => {
    const { signer, calls, release } = heldSigner(300, 1)
    const first = signer.sign(1, blob(1))
    await Promise.resolve()
    const more = Array.from({ length: 150 }, (_, i) => signer.sign(i + 2, blob(i + 2)))
    release()
    const urls = await Promise.all([first, ...more])
    expect(urls.map((u) => u.url)).toEqual(Array.from({ length: 151 }, (_, i) => `u${i + 1}`))
    expect(calls.map((c) => c.length)).toEqual([1, 100, 50])
  })

  it('hands a part its URL when its own call answers, not after the calls queued behind it', async () => {
    const { signer, calls, release } = heldSigner(10, 2) // the second call hangs
    const first = signer.sign(1, blob(1))
    const second = signer.sign(2, blob(2)) // asked during the first call: goes into the second
    expect((await first).url).toBe('u1')
    expect(calls).toEqual([[1], [2]])
    let secondDone = false
    void second.then(() => (secondDone = true))
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(secondDone).toBe(false)
    release()
    expect((await second).url).toBe('u2')
  })

  it('gives a retried part a fresh URL', async () => {
    const { signer, calls } = setup(3)
    const first = await signer.sign(2, blob(2))
    const again = await signer.sign(2, blob(2))
    expect(again.url).not.toBe(first.url)
    expect(calls.at(-1)!.numbers[0]).toBe(2)
  })

  it('re-signs a cached URL about to expire', async () => {
    const { signer, calls, tick } = setup(4, 4, '2030-01-01T00:02:00Z')
    await signer.sign(1, blob(1))
    tick(90_000) // 30 s left: under the margin
    expect((await signer.sign(2, blob(2))).url).toBe('https://s3/p2?v2')
    expect(calls).toHaveLength(2)
  })

  it('never signs ahead parts S3 already has, nor past the last part', async () => {
    const { signer, calls } = setup(6)
    signer.markStored([2, 3])
    for (const n of [1, 4, 5, 6]) await signer.sign(n, blob(n))
    const signed = calls.flatMap((c) => c.numbers)
    expect(signed.sort((a, b) => a - b)).toEqual([1, 4, 5, 6])
  })

  it('without checksums: no checksums, no checksum headers', async () => {
    const calls: (Record<string, string> | undefined)[] = []
    const signer = new PartSigner({
      partSize: 1,
      partCount: 2,
      slice: blob,
      checksum: null,
      call: async (numbers, checksums) => {
        calls.push(checksums)
        return { urls: Object.fromEntries(numbers.map((n) => [String(n), `u${n}`])), expires_at: '' }
      },
    })
    expect(await signer.sign(1, blob(1))).toEqual({ url: 'u1', headers: {}, expiresIn: undefined })
    expect(calls).toEqual([undefined])
  })

  it('prefers the headers the API says it signed, and fails on a missing URL', async () => {
    const signer = new PartSigner({
      partSize: 1,
      partCount: 2,
      slice: blob,
      checksum: async () => 'Zm9vYg==',
      call: async () => ({
        urls: { '1': 'u1' },
        headers: { '1': { 'x-amz-checksum-crc32': 'Zm9vYg==', 'x-amz-sdk-checksum-algorithm': 'CRC32' } },
        expires_at: '',
      }),
    })
    expect((await signer.sign(1, blob(1))).headers).toEqual({ 'x-amz-checksum-crc32': 'Zm9vYg==', 'x-amz-sdk-checksum-algorithm': 'CRC32' })
    await expect(signer.sign(2, blob(2))).rejects.toThrow(/no URL for part 2/)
  })

  it('propagates a failed sign call to every waiter', async () => {
    const signer = new PartSigner({
      partSize: 1,
      partCount: 3,
      slice: blob,
      checksum: null,
      call: async () => {
        throw new Error('sign failed')
      },
    })
    const results = await Promise.allSettled([signer.sign(1, blob(1)), signer.sign(2, blob(2))])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
  })

  it('uses the checksums and URLs of a head start without computing or signing them again', async () => {
    const { signer, calls } = setup(10)
    for (const n of [1, 2, 3]) signer.seedChecksum(n, Promise.resolve(`head(${n})`))
    signer.seedChecksum(11, Promise.resolve('beyond the last part')) // ignored
    signer.seedSigned(
      { urls: { '1': 'https://s3/p1?create', '2': 'https://s3/p2?create' }, expires_at: '2030-01-01T00:15:00Z' },
      { '1': 'head(1)', '2': 'head(2)' },
    )
    const first = await signer.sign(1, blob(1))
    expect(first.url).toBe('https://s3/p1?create')
    expect(first.headers['x-amz-checksum-crc32']).toBe('head(1)')
    expect((await signer.sign(2, blob(2))).url).toBe('https://s3/p2?create')
    // Part 3's checksum came from the head start (not 'crc(part-3)'): the one sign call
    // so far carries it as it is, with the parts after it checksummed meanwhile.
    const third = await signer.sign(3, blob(3))
    expect(third.url).toBe('https://s3/p3?v1')
    expect(calls).toHaveLength(1)
    expect(calls[0]!.numbers[0]).toBe(3)
    expect(calls[0]!.checksums?.['3']).toBe('head(3)')
    expect(calls[0]!.checksums?.['4']).toBe('crc(part-4)')
  })

  it('computes a head start checksum again when it failed', async () => {
    const { signer, calls } = setup(3)
    signer.seedChecksum(1, Promise.reject(new Error('read failed')))
    await Promise.resolve()
    await signer.sign(1, blob(1))
    expect(calls[0]!.checksums).toEqual({ '1': 'crc(part-1)' })
  })

  it('keeps the checksum of every part it signed or was handed, for complete', async () => {
    const { signer } = setup(10)
    signer.seedChecksum(1, Promise.resolve('head(1)'))
    await signer.sign(1, blob(1))
    await signer.sign(2, blob(2))
    expect(await signer.knownChecksum(1)).toBe('head(1)')
    expect(await signer.knownChecksum(2)).toBe('crc(part-2)')
    signer.markStored([9])
    expect(signer.knownChecksum(9)).toBeUndefined() // stored before this page: never read here
  })

  it('helpers', () => {
    expect(signedHeaders(undefined, undefined)).toEqual({})
    expect(expirySeconds('2030-01-01T00:00:03Z', now)).toBeUndefined()
    expect(expirySeconds('garbage', now)).toBeUndefined()
  })
})

describe('UploadStore', () => {
  const session: SavedSession = {
    upload_id: 'u1',
    token: 't1',
    key: 'uploads/u1/a.csv',
    part_size: 8 * 1024 * 1024,
    part_count: 3,
    filename: 'a.csv',
    size: 20 * 1024 * 1024,
    saved_at: '2030-01-01T00:00:00Z',
  }
  it('remembers a session per fingerprint and forgets it', () => {
    const store = new UploadStore(new MemoryStorage())
    expect(store.loadSession('fp')).toBeNull()
    store.saveSession('fp', session)
    expect(store.loadSession('fp')).toEqual(session)
    expect(store.loadSession('other')).toBeNull()
    store.forgetSession('fp')
    expect(store.loadSession('fp')).toBeNull()
  })
  it('ignores corrupt entries', () => {
    const storage = new MemoryStorage()
    storage.setItem('upflow.session.fp', '{not json')
    storage.setItem('upflow.recent', '{"a":1}')
    const store = new UploadStore(storage)
    expect(store.loadSession('fp')).toBeNull()
    expect(store.recent()).toEqual([])
    storage.setItem('upflow.session.fp', JSON.stringify({ upload_id: 'x' }))
    expect(store.loadSession('fp')).toBeNull()
  })
  it('keeps recent uploads newest first, deduplicated and bounded', () => {
    const store = new UploadStore(new MemoryStorage())
    for (let i = 0; i < 25; i++) store.remember({ upload_id: `u${i}`, token: 't', filename: 'a.csv', size: 1, created_at: '' })
    store.remember({ upload_id: 'u3', token: 't', filename: 'a.csv', size: 1, created_at: '' })
    const list = store.recent()
    expect(list).toHaveLength(20)
    expect(list[0]!.upload_id).toBe('u3')
    expect(list.filter((r) => r.upload_id === 'u3')).toHaveLength(1)
  })
})

describe('parseConfig', () => {
  it('reads the API URL', () => {
    expect(parseConfig({ apiUrl: 'http://127.0.0.1:8000/' })).toEqual({ apiUrl: 'http://127.0.0.1:8000' })
  })
  it('refuses a config without a usable URL', () => {
    expect(() => parseConfig(null)).toThrow()
    expect(() => parseConfig({ apiUrl: 'ftp://x' })).toThrow(/apiUrl/)
    expect(() => parseConfig({})).toThrow(/apiUrl/)
  })
})

describe('crc32OfBlobFast (WebAssembly)', () => {
  it('agrees with the JS implementation, also when called concurrently', async () => {
    const { crc32OfBlobFast } = await import('./crc32')
    const blobs = [0, 1, 5 * 1024 * 1024 + 17].map((size) => {
      const bytes = new Uint8Array(size)
      for (let i = 0; i < size; i++) bytes[i] = (i * 131 + size) & 0xff
      return bytes
    })
    const fast = await Promise.all(blobs.map((b) => crc32OfBlobFast(new Blob([b]))))
    expect(fast).toEqual(blobs.map((b) => crc32Base64(crc32(b))))
    expect(await crc32OfBlobFast(new Blob([enc.encode('123456789')]))).toBe('y/Q5Jg==')
  })
})

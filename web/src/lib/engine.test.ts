import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { parseConfig } from './config'
import { crc32, crc32Base64, crc32OfBlob, crc32Update } from './crc32'
import { backoffDelays, missingParts, partCount, partRange, RateEstimator } from './progress'
import { expirySeconds, SignBatcher, signedHeaders } from './signBatcher'
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

describe('SignBatcher', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())
  const now = Date.parse('2030-01-01T00:00:00Z')

  it('coalesces calls made together into one request with their checksums', async () => {
    const call = vi.fn(async (numbers: number[], _checksums?: Record<string, string>) => ({
      urls: Object.fromEntries(numbers.map((n) => [String(n), `https://s3/part${n}`])),
      expires_at: '2030-01-01T00:15:00Z',
    }))
    const batcher = new SignBatcher(call, 3, () => now)
    const a = batcher.sign(1, 'AAAAAA==')
    const b = batcher.sign(2, 'AAAAAQ==')
    await vi.advanceTimersByTimeAsync(5)
    expect(call).toHaveBeenCalledTimes(1)
    expect(call.mock.calls[0]).toEqual([[1, 2], { '1': 'AAAAAA==', '2': 'AAAAAQ==' }])
    await expect(a).resolves.toEqual({
      url: 'https://s3/part1',
      headers: { 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-sdk-checksum-algorithm': 'CRC32' },
      expiresIn: 900,
    })
    await expect(b).resolves.toMatchObject({ url: 'https://s3/part2' })
  })

  it('prefers the headers the API says it signed', async () => {
    const batcher = new SignBatcher(
      async () => ({ urls: { '3': 'u3' }, headers: { '3': { 'x-amz-checksum-crc32': 'Zm9vYg==', 'x-amz-sdk-checksum-algorithm': 'CRC32' } }, expires_at: '' }),
      1,
    )
    const p = batcher.sign(3, 'Zm9vYg==')
    await vi.advanceTimersByTimeAsync(2)
    await expect(p).resolves.toEqual({ url: 'u3', headers: { 'x-amz-checksum-crc32': 'Zm9vYg==', 'x-amz-sdk-checksum-algorithm': 'CRC32' }, expiresIn: undefined })
  })

  it('splits at 100 parts per call and propagates failures', async () => {
    const sizes: number[] = []
    const batcher = new SignBatcher(async (numbers) => {
      sizes.push(numbers.length)
      if (numbers.includes(150)) throw new Error('sign failed')
      return { urls: Object.fromEntries(numbers.map((n) => [String(n), `u${n}`])), expires_at: '' }
    }, 3)
    const all = Array.from({ length: 150 }, (_, i) => batcher.sign(i + 1).then(() => 'ok', (e: Error) => e.message))
    await vi.advanceTimersByTimeAsync(5)
    const results = await Promise.all(all)
    expect(sizes).toEqual([100, 50])
    expect(results.slice(0, 100).every((r) => r === 'ok')).toBe(true)
    expect(results.slice(100).every((r) => r === 'sign failed')).toBe(true)
  })

  it('rejects a part the API did not sign', async () => {
    const batcher = new SignBatcher(async () => ({ urls: {}, expires_at: '' }), 1)
    const p = expect(batcher.sign(9)).rejects.toThrow(/no URL for part 9/)
    await vi.advanceTimersByTimeAsync(2)
    await p
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

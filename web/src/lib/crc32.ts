import { createCRC32 } from 'hash-wasm'

// CRC-32 (IEEE 802.3, the one S3 calls CRC32), slicing-by-8, and its base64
// big-endian form as S3's x-amz-checksum-crc32 header wants it.

const TABLES: Uint32Array[] = (() => {
  const tables: Uint32Array[] = []
  const t0 = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t0[n] = c >>> 0
  }
  tables.push(t0)
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1]!
    const next = new Uint32Array(256)
    for (let n = 0; n < 256; n++) next[n] = (prev[n]! >>> 8) ^ t0[prev[n]! & 0xff]!
    tables.push(next)
  }
  return tables
})()

/** Continue a CRC over `data` (start with 0). Returns the unsigned 32-bit CRC. */
export function crc32Update(crc: number, data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array,
  ]
  let c = ~crc >>> 0
  let i = 0
  const n = data.length
  const end8 = n - (n % 8)
  while (i < end8) {
    const a = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) ^ c
    c =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[data[i + 4]!]! ^
      t2[data[i + 5]!]! ^
      t1[data[i + 6]!]! ^
      t0[data[i + 7]!]!
    i += 8
  }
  while (i < n) {
    c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
    i++
  }
  return ~c >>> 0
}

export function crc32(data: Uint8Array): number {
  return crc32Update(0, data)
}

/** The 4 big-endian bytes of the CRC, base64 (what S3 calls ChecksumCRC32). */
export function crc32Base64(crc: number): string {
  const bytes = [(crc >>> 24) & 0xff, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff]
  return btoa(String.fromCharCode(...bytes))
}

const READ_SLICE = 4 * 1024 * 1024

/** CRC32 of a Blob, read in 4 MiB slices so a 5 GiB part never sits in memory whole. */
export async function crc32OfBlob(blob: Blob): Promise<string> {
  let crc = 0
  for (const piece of pieces(blob, READ_SLICE)) crc = crc32Update(crc, new Uint8Array(await piece.arrayBuffer()))
  return crc32Base64(crc)
}

/** `blob` cut into consecutive slices of `size` bytes (the last one shorter). */
function* pieces(blob: Blob, size: number): Generator<Blob> {
  for (let offset = 0; offset < blob.size; offset += size) yield blob.slice(offset, Math.min(blob.size, offset + size))
}

type Hasher = Awaited<ReturnType<typeof createCRC32>>
let wasmHasher: Promise<Hasher | null> | null = null

function hasher(): Promise<Hasher | null> {
  wasmHasher ??= createCRC32().catch(() => null)
  return wasmHasher
}

/** Compile the WebAssembly CRC32 now, so the first part's checksum does not wait for it. */
export function prepareHasher(): void {
  void hasher()
}

function digestBase64(h: Hasher): string {
  return crc32Base64(Number.parseInt(h.digest('hex'), 16) >>> 0)
}

/**
 * CRC32 of a Blob with hash-wasm's WebAssembly CRC32 (≈2.5× the JS table
 * version), falling back to crc32OfBlob where WebAssembly is unavailable.
 * One hasher per realm, so calls are serialised.
 */
export function crc32OfBlobFast(blob: Blob): Promise<string> {
  const run = lock.then(() => wasmCrc(blob))
  lock = run.catch(() => undefined)
  return run
}

let lock: Promise<unknown> = Promise.resolve()

async function wasmCrc(blob: Blob): Promise<string> {
  const h = await hasher()
  if (!h) return crc32OfBlob(blob)
  h.init()
  for (const piece of pieces(blob, READ_SLICE)) h.update(new Uint8Array(await piece.arrayBuffer()))
  return digestBase64(h)
}

/** Part bytes read at a time by `crc32OfBlobInWorker` (a whole 8–16 MiB part in one read). */
const WORKER_READ_SLICE = 16 * 1024 * 1024

export type SyncReader = { readAsArrayBuffer(blob: Blob): ArrayBuffer }

/**
 * CRC32 of a Blob inside a Web Worker, read with `FileReaderSync` in up to 16 MiB
 * pieces: in Chromium this costs about 1 CPU-second less per 512 MiB than
 * `blob.arrayBuffer()` (measured with bench/browser_upload.py; docs/performance.md).
 * Elsewhere (main thread, no WebAssembly) it is `crc32OfBlobFast`.
 */
export async function crc32OfBlobInWorker(
  blob: Blob,
  Reader = (globalThis as { FileReaderSync?: new () => SyncReader }).FileReaderSync,
): Promise<string> {
  const h = Reader ? await hasher() : null
  if (!Reader || !h) return crc32OfBlobFast(blob)
  // Synchronous from here on: no other message handler can use the hasher meanwhile.
  const reader = new Reader()
  h.init()
  for (const piece of pieces(blob, WORKER_READ_SLICE)) h.update(new Uint8Array(reader.readAsArrayBuffer(piece)))
  return digestBase64(h)
}

/** A part's CRC32 and, when asked for, the bytes it was computed over. */
export interface PartDigest {
  checksum: string
  bytes: Uint8Array | null
}

/**
 * `crc32OfBlobInWorker`, and with `keepBytes` the part's bytes too, read in one
 * piece: the PUT then sends these bytes instead of reading the file a second
 * time (in Chromium the second read cost the browser process ~2.5 CPU-seconds
 * per 512 MiB; docs/performance.md). Without FileReaderSync or WebAssembly no bytes are kept.
 */
export async function digestInWorker(
  blob: Blob,
  keepBytes: boolean,
  Reader = (globalThis as { FileReaderSync?: new () => SyncReader }).FileReaderSync,
): Promise<PartDigest> {
  const h = keepBytes && Reader ? await hasher() : null
  if (!Reader || !h) return { checksum: await crc32OfBlobInWorker(blob, Reader), bytes: null }
  const bytes = new Uint8Array(new Reader().readAsArrayBuffer(blob))
  h.init()
  h.update(bytes)
  return { checksum: digestBase64(h), bytes }
}

// A small pool of CRC32 workers; falls back to the main thread where Workers are missing.
// The page makes one when a file is chosen, so the workers have started (and compiled
// their WebAssembly) by the time the upload asks for its first checksum.
import { crc32OfBlobFast, type PartDigest } from './crc32'

type Pending = { resolve: (v: PartDigest) => void; reject: (e: Error) => void }
type Answer = { id: number; checksum?: string; bytes?: Uint8Array | null; error?: string }

export class ChecksumPool {
  private readonly workers: Worker[] = []
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private turn = 0

  constructor(size = 2) {
    if (typeof Worker === 'undefined') return
    try {
      for (let i = 0; i < size; i++) {
        const worker = new Worker(new URL('./crc32.worker.ts', import.meta.url), { type: 'module' })
        worker.onmessage = (event: MessageEvent<Answer>) => {
          const { id, checksum, bytes, error } = event.data
          const waiter = this.pending.get(id)
          if (!waiter) return
          this.pending.delete(id)
          if (checksum != null) waiter.resolve({ checksum, bytes: bytes ?? null })
          else waiter.reject(new Error(error ?? 'checksum failed'))
        }
        this.workers.push(worker)
      }
    } catch {
      this.workers.length = 0
    }
  }

  /** The CRC32 of `blob`; with `keepBytes`, also its bytes where a worker could read them. */
  async digest(blob: Blob, keepBytes: boolean): Promise<PartDigest> {
    if (this.workers.length === 0) return { checksum: await crc32OfBlobFast(blob), bytes: null }
    const worker = this.workers[this.turn++ % this.workers.length]!
    const id = this.nextId++
    return new Promise<PartDigest>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, blob, keep: keepBytes })
    })
  }

  close(): void {
    for (const w of this.workers) w.terminate()
    this.workers.length = 0
    for (const p of this.pending.values()) p.reject(new Error('checksum pool closed'))
    this.pending.clear()
  }
}

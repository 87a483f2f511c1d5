// A small pool of CRC32 workers; falls back to the main thread where Workers are missing.
import { crc32OfBlobFast } from './crc32'

type Pending = { resolve: (v: string) => void; reject: (e: Error) => void }

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
        worker.onmessage = (event: MessageEvent<{ id: number; checksum?: string; error?: string }>) => {
          const { id, checksum, error } = event.data
          const waiter = this.pending.get(id)
          if (!waiter) return
          this.pending.delete(id)
          if (checksum != null) waiter.resolve(checksum)
          else waiter.reject(new Error(error ?? 'checksum failed'))
        }
        this.workers.push(worker)
      }
    } catch {
      this.workers.length = 0
    }
  }

  checksum(blob: Blob): Promise<string> {
    if (this.workers.length === 0) return crc32OfBlobFast(blob)
    const worker = this.workers[this.turn++ % this.workers.length]!
    const id = this.nextId++
    return new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, blob })
    })
  }

  close(): void {
    for (const w of this.workers) w.terminate()
    this.workers.length = 0
    for (const p of this.pending.values()) p.reject(new Error('checksum pool closed'))
    this.pending.clear()
  }
}

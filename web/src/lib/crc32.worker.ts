// Computes part checksums off the main thread so the page stays responsive; with
// `keep`, hands the part's bytes back (transferred, not copied) for its PUT.
import { digestInWorker, prepareHasher } from './crc32'

prepareHasher()

interface Request {
  id: number
  blob: Blob
  keep: boolean
}

self.onmessage = async (event: MessageEvent<Request>) => {
  const { id, blob, keep } = event.data
  try {
    const { checksum, bytes } = await digestInWorker(blob, keep)
    self.postMessage({ id, checksum, bytes }, { transfer: bytes ? [bytes.buffer as ArrayBuffer] : [] })
  } catch (error) {
    self.postMessage({ id, error: error instanceof Error ? error.message : String(error) })
  }
}

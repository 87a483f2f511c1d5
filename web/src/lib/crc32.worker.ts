// Computes part checksums off the main thread so the page stays responsive.
import { crc32OfBlobInWorker } from './crc32'

interface Request {
  id: number
  blob: Blob
}

self.onmessage = async (event: MessageEvent<Request>) => {
  const { id, blob } = event.data
  try {
    const checksum = await crc32OfBlobInWorker(blob)
    self.postMessage({ id, checksum })
  } catch (error) {
    self.postMessage({ id, error: error instanceof Error ? error.message : String(error) })
  }
}

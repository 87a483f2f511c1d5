// The upload engine: Uppy core + @uppy/aws-s3 (5.x) in multipart mode, with
// every S3 callback mapped onto the upflow API (docs/design.md):
//
//   createMultipartUpload  → the session from POST /uploads (made by prepareSession,
//                            because Uppy asks getChunkSize *before* it creates the
//                            upload and the part size is the server's to choose; it
//                            also signs the parts the head start has checksummed)
//   getChunkSize           → that session's part_size
//   signPart               → POST /uploads/{id}/parts (CRC32 of the part in a worker; the
//                            part asked for and up to 15 following parts signed in one
//                            call by PartSigner; the PUT carries the signed
//                            x-amz-checksum-crc32 + x-amz-sdk-checksum-algorithm headers)
//   uploadPartBytes        → Uppy's own XHR PUT, sending the bytes the CRC32 worker
//                            read (PartBytes) when it kept them, else the file slice
//   listParts              → GET /uploads/{id}/parts
//   completeMultipartUpload→ POST /uploads/{id}/complete with {part_number, etag,
//                            checksum_crc32} (completionParts: an S3 that lists no part
//                            checksums, SeaweedFS, still wants them all at complete)
//   abortMultipartUpload   → DELETE /uploads/{id}, only when the user cancels (Uppy also
//                            calls it after a failed upload; we keep those resumable)
//
// Uppy supplies: the part slicing, the rate-limited queue (`limit` requests in
// flight), retries with our backoff delays, re-signing on every retry (so an
// expired URL is replaced; S3's 403 "Request has expired" is handled), pause
// and resume (in-flight PUTs aborted, resumed via listParts), and progress.
import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'
import { ApiClient, ApiError, describeError, type CompletedPart } from './api'
import { ChecksumPool } from './checksum'
import { heldBytesBudget, PartBytes } from './partBytes'
import { fingerprint } from './fingerprint'
import { HeadStart, headStartParts } from './headStart'
import { backoffDelays, partRange } from './progress'
import { PartSigner, SIGN_AHEAD } from './partSigner'
import type { SignAnswer } from './signing'
import type { SavedSession, UploadStore } from './storage'
import type { CompleteResponse, PartPlan } from './types'

export const PARTS_IN_FLIGHT = 6

/** Bytes of parts read ahead that may wait in memory for their PUT (the head start's included). */
export function readAheadBudget(partSize: number): number {
  return heldBytesBudget(partSize, SIGN_AHEAD + PARTS_IN_FLIGHT)
}

/** Read and checksum the first parts of `file` (planned as `plan`) before the click. */
export function startHeadStart(file: Blob, plan: PartPlan, pool: ChecksumPool): HeadStart {
  const budget = readAheadBudget(plan.part_size)
  return new HeadStart(file, plan, (blob, keep) => pool.digest(blob, keep), {
    parts: headStartParts(plan.part_size, PARTS_IN_FLIGHT, budget),
    budget,
  })
}

export interface PreparedSession {
  session: SavedSession
  /** true when an unfinished upload of this file was found and will be continued */
  resumed: boolean
  checksums: boolean
  /** URLs POST /uploads signed for the head start's parts, with the checksums they sign */
  signed?: { answer: SignAnswer; checksums: Record<string, string> | undefined } | null
}

/**
 * The upload to use for `file`: the one remembered for its fingerprint when the
 * server still has it open, else a new one (POST /uploads, asking for the URLs of
 * the parts `head` has already checksummed). Remembered either way.
 */
export async function prepareSession(
  api: ApiClient,
  store: UploadStore,
  file: File,
  head?: HeadStart | null,
): Promise<PreparedSession> {
  const fp = fingerprint(file)
  const saved = store.loadSession(fp)
  if (saved && saved.size === file.size) {
    try {
      const doc = await api.status(saved.upload_id, saved.token)
      if (doc.status === 'uploading' && doc.part_size === saved.part_size) {
        return { session: saved, resumed: true, checksums: saved.checksums ?? true }
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.retryable) throw error
      // 401/403/404: the saved upload is gone or not ours any more; start afresh.
    }
    store.forgetSession(fp)
  }
  const sign = head?.signRequest() ?? null
  const created = await api.createUpload(file.name, file.size, sign)
  const session: SavedSession = {
    upload_id: created.upload_id,
    token: created.token,
    key: created.key,
    part_size: created.part_size,
    part_count: created.part_count,
    filename: file.name,
    size: file.size,
    saved_at: new Date().toISOString(),
    checksums: created.checksum_algorithm !== null,
  }
  store.saveSession(fp, session)
  store.remember({
    upload_id: session.upload_id,
    token: session.token,
    filename: file.name,
    size: file.size,
    created_at: session.saved_at,
  })
  const signed = created.signed ? { answer: created.signed, checksums: sign?.checksums } : null
  return { session, resumed: false, checksums: session.checksums ?? true, signed }
}

/** Where a part's CRC32 comes from at complete, in this order. */
export interface PartChecksumSources {
  /** computed (or handed over by the head start) in this page's life */
  known(partNumber: number): Promise<string> | undefined
  /** what S3's ListParts answered for the part, when it lists checksums */
  listed(partNumber: number): string | undefined
  /** the part read from the file again: a part sent before a reload, on an S3 that lists none */
  compute(partNumber: number): Promise<string>
}

/**
 * The body of POST /uploads/{id}/complete for Uppy's `parts`: every part with its ETag
 * and, for a CRC32 upload (`sources` not null), its checksum. Undefined when a part has no
 * ETag (the server then takes S3's list as it is).
 */
export async function completionParts(
  parts: readonly { PartNumber?: number | null; ETag?: string | null }[],
  sources: PartChecksumSources | null,
): Promise<CompletedPart[] | undefined> {
  const named = parts.filter(
    (p): p is { PartNumber: number; ETag: string } => p.PartNumber != null && p.ETag != null,
  )
  if (named.length !== parts.length) return undefined
  if (!sources) return named.map((p) => ({ part_number: p.PartNumber, etag: p.ETag }))
  const checksumOf = async (n: number): Promise<string> => {
    const known = sources.known(n)
    if (known) {
      try {
        return await known
      } catch {
        // a failed read ahead: the part was sent with a checksum computed again; so is this one
      }
    }
    return sources.listed(n) ?? (await sources.compute(n))
  }
  const checksums = await Promise.all(named.map((p) => checksumOf(p.PartNumber)))
  return named.map((p, i) => ({ part_number: p.PartNumber, etag: p.ETag, checksum_crc32: checksums[i]! }))
}

export interface UploadEvents {
  onProgress: (bytesDone: number, bytesTotal: number) => void
  onPaused: (paused: boolean) => void
  onCompleting: () => void
  onComplete: (result: CompleteResponse) => void
  onError: (message: string) => void
  /** bytes S3 already held when a resumed upload listed its parts */
  onAlreadyUploaded?: (bytes: number, parts: number) => void
}

type MultipartState = { s3Multipart?: { uploadId: string; key: string } }

export class UploadController {
  readonly session: SavedSession
  private readonly api: ApiClient
  private readonly uppy: Uppy
  private readonly pool: ChecksumPool
  private readonly partBytes: PartBytes
  /** Uppy's body Blob of each part signed, so its PUT can find the bytes already read */
  private readonly partOfBody = new WeakMap<Blob, number>()
  private readonly signer: PartSigner
  /** the CRC32 S3's ListParts gave of each part it holds (none on SeaweedFS) */
  private readonly listedChecksums = new Map<number, string>()
  private readonly fileId: string
  private cancelRequested = false
  private abortPromise: Promise<void> | null = null
  private paused = false
  private finished = false

  /**
   * `pool`: CRC32 workers started beforehand (the controller owns and closes them); else its own.
   * `head`: the parts read before the click; the controller takes them over (or drops them
   * when this upload resumes, or was planned with another part size).
   */
  constructor(
    api: ApiClient,
    file: File,
    prepared: PreparedSession,
    events: UploadEvents,
    pool?: ChecksumPool,
    head?: HeadStart | null,
  ) {
    this.api = api
    this.session = prepared.session
    const { upload_id: id, token, key, part_size: partSize } = prepared.session
    this.pool = pool ?? new ChecksumPool(2)
    this.partBytes = new PartBytes(
      (blob, keep) => this.pool.digest(blob, keep),
      readAheadBudget(partSize),
    )
    const useChecksums = prepared.checksums
    this.signer = new PartSigner({
      partSize,
      partCount: prepared.session.part_count,
      slice: (n) => file.slice(...partRange(n, partSize, file.size)),
      checksum: useChecksums ? (blob, n) => this.partBytes.checksum(n, blob) : null,
      call: (numbers, checksums) => api.signParts(id, token, numbers, checksums),
    })
    if (head && useChecksums && !prepared.resumed && head.plan.part_size === partSize) {
      for (const [n, read] of head.handOver()) {
        // The bytes are held before the checksum reaches the signer, so the PUT finds them.
        const sum = read.then(({ checksum, bytes }) => {
          if (bytes) this.partBytes.hold(n, bytes)
          return checksum
        })
        this.signer.seedChecksum(n, sum)
      }
      if (prepared.signed) this.signer.seedSigned(prepared.signed.answer, prepared.signed.checksums)
    } else {
      head?.close()
    }

    this.uppy = new Uppy({ id: `upflow-${id}`, autoProceed: false, allowMultipleUploadBatches: true })
    this.uppy.use(AwsS3, {
      shouldUseMultipart: true,
      limit: PARTS_IN_FLIGHT,
      retryDelays: backoffDelays(8, 500, 15000),
      getChunkSize: () => partSize,
      createMultipartUpload: async () => ({ uploadId: id, key }),
      listParts: async (_file, { signal }) => {
        const parts = await api.listParts(id, token, signal)
        this.signer.markStored(parts.map((p) => p.part_number))
        for (const p of parts) if (p.checksum_crc32) this.listedChecksums.set(p.part_number, p.checksum_crc32)
        const bytes = parts.reduce((n, p) => n + p.size, 0)
        events.onAlreadyUploaded?.(bytes, parts.length)
        return parts.map((p) => ({ PartNumber: p.part_number, Size: p.size, ETag: p.etag }))
      },
      signPart: async (_file, { partNumber, body, signal }) => {
        signal?.throwIfAborted()
        const signed = await this.signer.sign(partNumber, body)
        this.partOfBody.set(body, partNumber)
        // No `expires`: Uppy would turn it into a PUT timeout, killing slow large parts.
        // An expired URL is answered 403 "Request has expired" by S3; Uppy then re-signs.
        return { method: 'PUT' as const, url: signed.url, headers: signed.headers }
      },
      uploadPartBytes: (options) => {
        const partNumber = options.body instanceof Blob ? this.partOfBody.get(options.body) : undefined
        const bytes = partNumber === undefined ? null : this.partBytes.take(partNumber)
        if (!bytes || bytes.byteLength !== options.size) return AwsS3.uploadPartBytes(options)
        // XMLHttpRequest sends a Uint8Array as it sends a Blob; Uppy's type only names Blob.
        return AwsS3.uploadPartBytes({ ...options, body: bytes as unknown as Blob })
      },
      completeMultipartUpload: async (_file, { parts, signal }) => {
        events.onCompleting()
        const sources: PartChecksumSources | null = useChecksums
          ? {
              known: (n) => this.signer.knownChecksum(n),
              listed: (n) => this.listedChecksums.get(n),
              compute: async (n) =>
                (await this.pool.digest(file.slice(...partRange(n, partSize, file.size)), false)).checksum,
            }
          : null
        const body = await completionParts(parts, sources)
        signal?.throwIfAborted()
        const result = await api.complete(id, token, body, signal)
        return { ...result, location: result.key }
      },
      abortMultipartUpload: async () => {
        if (this.cancelRequested) await this.abortOnServer()
      },
    })

    this.fileId = this.uppy.addFile({ name: file.name, type: 'text/csv', data: file, source: 'upflow' })
    if (prepared.resumed) {
      // Uppy's restore path: listParts first, then only the missing parts.
      const state: MultipartState = { s3Multipart: { uploadId: id, key } }
      this.uppy.setFileState(this.fileId, state as unknown as Parameters<Uppy['setFileState']>[1])
    }

    this.uppy.on('upload-progress', (_file, progress) => {
      events.onProgress(progress.bytesUploaded, progress.bytesTotal ?? file.size)
    })
    this.uppy.on('upload-pause', (_file, isPaused) => {
      this.paused = isPaused
      events.onPaused(isPaused)
    })
    this.uppy.on('upload-success', (_file, response) => {
      this.finished = true
      events.onComplete(response.body as unknown as CompleteResponse)
    })
    this.uppy.on('upload-error', (_file, error) => {
      if (this.cancelRequested) return
      events.onError(uploadErrorWords(error))
    })
  }

  start(): void {
    this.uppy.upload().catch((error: unknown) => {
      if (!this.cancelRequested) console.error('upflow: upload failed', error)
    })
  }

  get isPaused(): boolean {
    return this.paused
  }

  pause(): void {
    if (!this.paused && !this.finished) this.uppy.pauseResume(this.fileId)
  }

  resume(): void {
    if (this.paused && !this.finished) this.uppy.pauseResume(this.fileId)
  }

  /** Stop sending and delete the upload on the server (DELETE /uploads/{id}). */
  async cancel(): Promise<void> {
    this.cancelRequested = true
    try {
      this.uppy.removeFile(this.fileId)
    } catch {
      // already gone
    }
    await this.abortOnServer()
  }

  private abortOnServer(): Promise<void> {
    this.abortPromise ??= this.api.abort(this.session.upload_id, this.session.token).then(() => undefined)
    return this.abortPromise
  }

  destroy(): void {
    this.partBytes.close()
    this.pool.close()
    this.uppy.destroy()
  }
}

function uploadErrorWords(error: unknown): string {
  const source = (error as { source?: { status?: number } } | null)?.source
  if (error instanceof ApiError) return error.message
  if (source && typeof source.status === 'number') {
    if (source.status === 0) return 'The connection to storage failed repeatedly. Resume to try again.'
    return `Storage refused a part (HTTP ${source.status}). Resume to try again.`
  }
  return describeError(error)
}

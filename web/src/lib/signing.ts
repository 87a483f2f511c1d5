// Shapes and helpers shared by the part signer.

export interface SignedPart {
  url: string
  headers: Record<string, string>
  /** seconds until the URL expires, when known */
  expiresIn: number | undefined
}

/** What a sign call answers (and POST /uploads, for the parts of a head start) */
export interface SignAnswer {
  urls: Record<string, string>
  headers?: Record<string, Record<string, string>>
  expires_at: string
}

export type SignCall = (partNumbers: number[], checksums: Record<string, string> | undefined) => Promise<SignAnswer>

/** The headers a checksummed URL was signed with: the API's when it sends them, else built. */
export function signedHeaders(
  fromApi: Record<string, string> | undefined,
  checksum: string | undefined,
): Record<string, string> {
  if (fromApi && Object.keys(fromApi).length > 0) return { ...fromApi }
  if (!checksum) return {}
  return { 'x-amz-checksum-crc32': checksum, 'x-amz-sdk-checksum-algorithm': 'CRC32' }
}

export function expirySeconds(expiresAt: string | undefined, nowMs: number): number | undefined {
  if (!expiresAt) return undefined
  const t = Date.parse(expiresAt)
  if (Number.isNaN(t)) return undefined
  const seconds = Math.floor((t - nowMs) / 1000)
  return seconds > 5 ? seconds : undefined
}

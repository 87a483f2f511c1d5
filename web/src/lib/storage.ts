// What survives a reload: the session of an unfinished upload per file
// fingerprint, and the list of recent uploads. Everything goes through a
// Storage-like object so tests can pass a Map-backed one.

export interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export interface SavedSession {
  upload_id: string
  token: string
  key: string
  part_size: number
  part_count: number
  filename: string
  size: number
  saved_at: string
  /** the upload verifies a CRC32 per part (the API's default) */
  checksums?: boolean
}

export interface RecentUpload {
  upload_id: string
  token: string
  filename: string
  size: number
  created_at: string
}

const SESSION_PREFIX = 'upflow.session.'
const RECENT_KEY = 'upflow.recent'
export const RECENT_LIMIT = 20

function readJson<T>(storage: StorageLike, key: string): T | null {
  try {
    const raw = storage.getItem(key)
    return raw == null ? null : (JSON.parse(raw) as T)
  } catch {
    return null
  }
}

function isSession(value: unknown): value is SavedSession {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return (
    typeof v.upload_id === 'string' &&
    typeof v.token === 'string' &&
    typeof v.key === 'string' &&
    typeof v.part_size === 'number' &&
    v.part_size > 0
  )
}

export class UploadStore {
  private readonly storage: StorageLike

  constructor(storage: StorageLike) {
    this.storage = storage
  }

  loadSession(fp: string): SavedSession | null {
    const value = readJson<unknown>(this.storage, SESSION_PREFIX + fp)
    return isSession(value) ? value : null
  }

  saveSession(fp: string, session: SavedSession): void {
    try {
      this.storage.setItem(SESSION_PREFIX + fp, JSON.stringify(session))
    } catch {
      // Quota or privacy mode: the upload still works, it just cannot resume after a reload.
    }
  }

  forgetSession(fp: string): void {
    this.storage.removeItem(SESSION_PREFIX + fp)
  }

  recent(): RecentUpload[] {
    const list = readJson<unknown>(this.storage, RECENT_KEY)
    if (!Array.isArray(list)) return []
    return list.filter(
      (r): r is RecentUpload =>
        typeof r === 'object' && r !== null && typeof r.upload_id === 'string' && typeof r.token === 'string',
    )
  }

  remember(upload: RecentUpload): RecentUpload[] {
    const list = [upload, ...this.recent().filter((r) => r.upload_id !== upload.upload_id)].slice(0, RECENT_LIMIT)
    try {
      this.storage.setItem(RECENT_KEY, JSON.stringify(list))
    } catch {
      // ignore (see saveSession)
    }
    return list
  }
}

/** A Map-backed StorageLike, for tests and for browsers without localStorage. */
export class MemoryStorage implements StorageLike {
  private readonly map = new Map<string, string>()
  getItem(key: string): string | null {
    return this.map.get(key) ?? null
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value)
  }
  removeItem(key: string): void {
    this.map.delete(key)
  }
}

export function browserStorage(): StorageLike {
  try {
    const probe = '__upflow_probe__'
    window.localStorage.setItem(probe, probe)
    window.localStorage.removeItem(probe)
    return window.localStorage
  } catch {
    return new MemoryStorage()
  }
}

// A file's identity across page reloads: what the browser lets us see without
// reading it. Same name, size and modification time → same upload to resume.

export interface FileLike {
  name: string
  size: number
  lastModified: number
}

export function fingerprint(file: FileLike): string {
  return `upflow:v1:${encodeURIComponent(file.name)}:${file.size}:${file.lastModified}`
}

// The API URL comes from /config.json next to the page, never from the build.

export interface AppConfig {
  apiUrl: string
}

export function parseConfig(value: unknown): AppConfig {
  if (typeof value !== 'object' || value === null) throw new Error('config.json is not a JSON object')
  const apiUrl = (value as { apiUrl?: unknown }).apiUrl
  if (typeof apiUrl !== 'string' || !/^https?:\/\//.test(apiUrl)) {
    throw new Error('config.json has no valid "apiUrl" (an http(s) URL)')
  }
  return { apiUrl: apiUrl.replace(/\/+$/, '') }
}

export async function loadConfig(fetchImpl: typeof fetch = fetch): Promise<AppConfig> {
  const response = await fetchImpl('config.json', { cache: 'no-store' })
  if (!response.ok) throw new Error(`config.json could not be loaded (HTTP ${response.status})`)
  return parseConfig(await response.json())
}

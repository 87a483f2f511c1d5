// Checks made before any request: the API would refuse these anyway, but the
// user should hear it at once and nothing should leave the browser.
import { formatBytes } from './format'

/** 2 TB, the product's cap (upflow.definition.Limits.max_upload_size). */
export const MAX_UPLOAD_BYTES = 2 * 10 ** 12

export type FileProblem = { code: 'not_csv' | 'empty' | 'too_large'; message: string }

export function checkFile(file: { name: string; size: number }, maxBytes = MAX_UPLOAD_BYTES): FileProblem | null {
  if (!/\.csv$/i.test(file.name.trim())) {
    return { code: 'not_csv', message: `"${file.name}" is not a CSV file: choose a file whose name ends in .csv.` }
  }
  if (file.size <= 0) {
    return { code: 'empty', message: `"${file.name}" is empty: there is nothing to upload.` }
  }
  if (file.size > maxBytes) {
    return {
      code: 'too_large',
      message: `"${file.name}" is ${formatBytes(file.size)}, over the ${formatBytes(maxBytes)} (2 TB) limit.`,
    }
  }
  return null
}

import { describe, expect, it } from 'vitest'
import { fingerprint } from './fingerprint'
import { MAX_UPLOAD_BYTES, checkFile } from './validate'

describe('checkFile', () => {
  it('accepts a CSV of any case', () => {
    expect(checkFile({ name: 'pagamentos.csv', size: 10 })).toBeNull()
    expect(checkFile({ name: 'PAGAMENTOS.CSV', size: 10 })).toBeNull()
  })
  it('refuses a non-CSV name', () => {
    expect(checkFile({ name: 'report.xlsx', size: 10 })?.code).toBe('not_csv')
    expect(checkFile({ name: 'csv', size: 10 })?.code).toBe('not_csv')
    expect(checkFile({ name: 'a.csv.gz', size: 10 })?.message).toMatch(/not a CSV/)
  })
  it('refuses an empty file', () => {
    expect(checkFile({ name: 'a.csv', size: 0 })).toEqual({ code: 'empty', message: '"a.csv" is empty: there is nothing to upload.' })
  })
  it('refuses over 2 TB and accepts exactly 2 TB', () => {
    expect(checkFile({ name: 'a.csv', size: MAX_UPLOAD_BYTES })).toBeNull()
    const problem = checkFile({ name: 'a.csv', size: MAX_UPLOAD_BYTES + 1 })
    expect(problem?.code).toBe('too_large')
    expect(problem?.message).toMatch(/2 TB/)
  })
})

describe('fingerprint', () => {
  const base = { name: 'a.csv', size: 100, lastModified: 1700000000000 }
  it('is stable for the same file', () => {
    expect(fingerprint(base)).toBe(fingerprint({ ...base }))
  })
  it('differs on name, size or modification time', () => {
    const fp = fingerprint(base)
    expect(fingerprint({ ...base, name: 'b.csv' })).not.toBe(fp)
    expect(fingerprint({ ...base, size: 101 })).not.toBe(fp)
    expect(fingerprint({ ...base, lastModified: 1 })).not.toBe(fp)
  })
  it('cannot be confused by a colon in the name', () => {
    expect(fingerprint({ name: 'a:1', size: 2, lastModified: 3 })).not.toBe(fingerprint({ name: 'a', size: 1, lastModified: 23 }))
  })
})

import { describe, expect, it } from 'vitest'
import { describeDelimiter, formatBRL, formatBytes, formatCount, formatDuration, formatPercent, formatRate } from './format'

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.00 KiB'],
    [1536, '1.50 KiB'],
    [64 * 1024 * 1024, '64.0 MiB'],
    [512 * 1024 * 1024, '512 MiB'],
    [2 * 10 ** 12, '1.82 TiB'],
  ])('%d → %s', (n, text) => expect(formatBytes(n)).toBe(text))
  it('refuses nonsense', () => {
    expect(formatBytes(-1)).toBe('—')
    expect(formatBytes(Number.NaN)).toBe('—')
  })
})

describe('formatRate / formatDuration / formatPercent', () => {
  it('rates', () => {
    expect(formatRate(null)).toBe('—')
    expect(formatRate(0)).toBe('—')
    expect(formatRate(85 * 1024 * 1024)).toBe('85.0 MiB/s')
  })
  it('durations', () => {
    expect(formatDuration(null)).toBe('—')
    expect(formatDuration(0)).toBe('0 s')
    expect(formatDuration(42.4)).toBe('42 s')
    expect(formatDuration(185)).toBe('3 min 05 s')
    expect(formatDuration(2 * 3600 + 7 * 60 + 30)).toBe('2 h 07 min')
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('—')
  })
  it('percent floors and clamps', () => {
    expect(formatPercent(999, 1000)).toBe('99%')
    expect(formatPercent(1000, 1000)).toBe('100%')
    expect(formatPercent(5, 0)).toBe('0%')
    expect(formatPercent(2000, 1000)).toBe('100%')
  })
  it('counts group thousands with dots', () => {
    expect(formatCount(0)).toBe('0')
    expect(formatCount(1234567)).toBe('1.234.567')
    expect(formatCount(-1000)).toBe('-1.000')
  })
})

describe('formatBRL', () => {
  it.each([
    ['0', 'R$ 0,00'],
    ['0.00', 'R$ 0,00'],
    ['12', 'R$ 12,00'],
    ['1234.5', 'R$ 1.234,50'],
    ['1234567.89', 'R$ 1.234.567,89'],
    ['-10.10', '-R$ 10,10'],
    ['-0.00', 'R$ 0,00'],
    ['0.005', 'R$ 0,01'],
    ['9.995', 'R$ 10,00'],
    ['99999999999999999999.99', 'R$ 99.999.999.999.999.999.999,99'],
  ])('%s → %s', (amount, text) => expect(formatBRL(amount)).toBe(text))
  it('numbers and garbage', () => {
    expect(formatBRL(3.5)).toBe('R$ 3,50')
    expect(formatBRL(null)).toBe('—')
    expect(formatBRL('abc')).toBe('—')
  })
})

describe('describeDelimiter', () => {
  it('names the usual ones', () => {
    expect(describeDelimiter(';')).toBe('semicolon (;)')
    expect(describeDelimiter('\t')).toBe('tab')
    expect(describeDelimiter('#')).toBe('"#"')
  })
})

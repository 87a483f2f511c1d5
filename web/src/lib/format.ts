// Pure formatting helpers: bytes, rates, durations, percentages, BRL money.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const

/** Binary units (what the API's limits use): 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—'
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024
    unit += 1
  }
  if (unit === 0) return `${Math.round(value)} B`
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`
}

/** Bytes per second → "12.3 MiB/s". */
export function formatRate(bytesPerSecond: number | null): string {
  if (bytesPerSecond == null || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '—'
  return `${formatBytes(bytesPerSecond)}/s`
}

/** Seconds → "42 s", "3 min 05 s", "2 h 07 min". */
export function formatDuration(seconds: number | null): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return '—'
  const s = Math.round(seconds)
  if (s < 60) return `${s} s`
  if (s < 3600) {
    const m = Math.floor(s / 60)
    return `${m} min ${String(s % 60).padStart(2, '0')} s`
  }
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return `${h} h ${String(m).padStart(2, '0')} min`
}

/** 0..1 fraction → "42%" (floored so 99.9% never reads 100%). */
export function formatPercent(done: number, total: number): string {
  return `${percentOf(done, total)}%`
}

export function percentOf(done: number, total: number): number {
  if (total <= 0) return 0
  const p = Math.floor((done / total) * 100)
  return Math.max(0, Math.min(100, p))
}

/** Whole numbers with thousands separators, pt-BR style (1.234.567). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '—'
  return groupThousands(String(Math.trunc(Math.abs(n))), '.', n < 0)
}

function groupThousands(digits: string, sep: string, negative: boolean): string {
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, sep)
  return negative ? `-${grouped}` : grouped
}

/**
 * An exact decimal string from the API ("1234.5", "-0.10", "12") → "R$ 1.234,50".
 * Works on the string, so amounts beyond 2^53 cents stay exact.
 */
export function formatBRL(amount: string | number | null | undefined): string {
  if (amount == null || amount === '') return '—'
  const raw = typeof amount === 'number' ? amount.toFixed(2) : amount.trim()
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(raw)
  if (!match) return '—'
  const [, sign, intPartRaw = '', fracRaw = ''] = match
  let intPart = intPartRaw.replace(/^0+(?=\d)/, '') || '0'
  let frac = fracRaw
  if (frac.length > 2) {
    // Round half up on the third digit, carrying into the integer part.
    const roundUp = Number(frac[2]) >= 5
    frac = frac.slice(0, 2)
    if (roundUp) {
      const cents = addOne(intPart + frac)
      intPart = cents.slice(0, -2) || '0'
      frac = cents.slice(-2)
    }
  }
  frac = frac.padEnd(2, '0')
  const isZero = /^0*$/.test(intPart) && /^0*$/.test(frac)
  const negative = sign === '-' && !isZero
  return `${negative ? '-' : ''}R$ ${groupThousands(intPart, '.', false)},${frac}`
}

function addOne(digits: string): string {
  const out = digits.split('')
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] === '9') {
      out[i] = '0'
    } else {
      out[i] = String(Number(out[i]) + 1)
      return out.join('')
    }
  }
  return `1${out.join('')}`
}

/** Delimiters in words for the preview. */
export function describeDelimiter(delimiter: string): string {
  switch (delimiter) {
    case ',':
      return 'comma (,)'
    case ';':
      return 'semicolon (;)'
    case '\t':
      return 'tab'
    case '|':
      return 'pipe (|)'
    default:
      return JSON.stringify(delimiter)
  }
}

import { describe, expect, it } from 'vitest'
import {
  MAX_GRID_CELLS,
  canRetryChunks,
  countChunkStates,
  errorCodeLabel,
  formatChunkSeconds,
  parseChunkGrid,
  shouldKeepPolling,
  statusView,
} from './status'

const chunks = (total: number, done: number, failed: number) => ({ total, done, failed })

describe('statusView', () => {
  it('maps every status of the contract', () => {
    expect(statusView('completed_with_errors')).toMatchObject({ label: 'Completed with errors', tone: 'warning', terminal: true })
    expect(statusView('completed')).toMatchObject({ label: 'Completed', tone: 'success', terminal: true })
    expect(statusView('failed')).toMatchObject({ tone: 'danger', terminal: true })
    expect(statusView('aborted')).toMatchObject({ label: 'Cancelled', terminal: true })
    for (const s of ['uploading', 'uploaded', 'processing']) expect(statusView(s).terminal).toBe(false)
  })
  it('humanises an unknown status and keeps polling it', () => {
    expect(statusView('re_planning')).toMatchObject({ label: 're planning', terminal: false })
  })
})

describe('shouldKeepPolling', () => {
  it('polls until final', () => {
    expect(shouldKeepPolling({ status: 'processing', chunks: chunks(8, 3, 0) })).toBe(true)
    expect(shouldKeepPolling({ status: 'uploaded', chunks: chunks(0, 0, 0) })).toBe(true)
    expect(shouldKeepPolling({ status: 'completed', chunks: chunks(8, 8, 0) })).toBe(false)
    expect(shouldKeepPolling({ status: 'completed_with_errors', chunks: chunks(8, 8, 0) })).toBe(false)
  })
  it('keeps polling a failed upload whose chunks are still running', () => {
    expect(shouldKeepPolling({ status: 'failed', chunks: chunks(8, 5, 1) })).toBe(true)
    expect(shouldKeepPolling({ status: 'failed', chunks: chunks(8, 7, 1) })).toBe(false)
  })
})

describe('canRetryChunks', () => {
  it('offers retry only when chunks failed', () => {
    expect(canRetryChunks({ status: 'failed', chunks: chunks(8, 7, 1) })).toBe(true)
    expect(canRetryChunks({ status: 'completed', chunks: chunks(8, 8, 0) })).toBe(false)
    expect(canRetryChunks({ status: 'aborted', chunks: chunks(8, 0, 2) })).toBe(false)
  })
})

describe('errorCodeLabel', () => {
  it('knows the validation codes and humanises others', () => {
    expect(errorCodeLabel('invalid_document')).toBe('Invalid CPF/CNPJ')
    expect(errorCodeLabel('something_new')).toBe('Something new')
  })
})

describe('parseChunkGrid', () => {
  it('reads one state per character, in chunk order', () => {
    expect(parseChunkGrid('CCRPF')).toEqual(['completed', 'completed', 'processing', 'pending', 'failed'])
    expect(parseChunkGrid('')).toEqual([])
  })
  it('answers exactly `total` cells: missing ones pending, extra ones dropped', () => {
    expect(parseChunkGrid('CF', 4)).toEqual(['completed', 'failed', 'pending', 'pending'])
    expect(parseChunkGrid('CCCC', 2)).toEqual(['completed', 'completed'])
    expect(parseChunkGrid('CC', 0)).toEqual([])
  })
  it('takes a character outside the alphabet as pending', () => {
    expect(parseChunkGrid('C?x')).toEqual(['completed', 'pending', 'pending'])
  })
  it('never answers more than the largest plan', () => {
    expect(parseChunkGrid('C'.repeat(MAX_GRID_CELLS + 5))).toHaveLength(MAX_GRID_CELLS)
    expect(parseChunkGrid('', 1e9)).toHaveLength(MAX_GRID_CELLS)
  })
})

describe('countChunkStates', () => {
  it('counts every state, zero for those absent', () => {
    expect(countChunkStates(parseChunkGrid('CCRPPPF'))).toEqual({ pending: 3, processing: 1, completed: 2, failed: 1 })
    expect(countChunkStates([])).toEqual({ pending: 0, processing: 0, completed: 0, failed: 0 })
  })
})

describe('formatChunkSeconds', () => {
  it('shows short chunks to the hundredth, long ones in minutes', () => {
    expect(formatChunkSeconds(0.4213)).toBe('0,42 s')
    expect(formatChunkSeconds(12.34)).toBe('12,3 s')
    expect(formatChunkSeconds(185)).toBe('3 min 05 s')
    expect(formatChunkSeconds(Number.NaN)).toBe('—')
  })
})

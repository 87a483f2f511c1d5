import { describe, expect, it } from 'vitest'
import { canRetryChunks, errorCodeLabel, shouldKeepPolling, statusView } from './status'

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

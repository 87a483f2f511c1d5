import { createElement } from 'react'
import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import type { ChunkTimings } from '../lib/types'
import { ChunkGrid, ChunkTimingsLine } from './ChunkGrid'

function cells(markup: string): { index?: string; state?: string; title?: string }[] {
  return [...markup.matchAll(/<span data-testid="chunk-cell" data-index="(\d+)" data-state="(\w+)" title="([^"]*)"/g)].map(
    ([, index, state, title]) => ({ index, state, title }),
  )
}

describe('ChunkGrid', () => {
  it('draws one labelled cell per chunk, coloured by state, with a legend of the counts', () => {
    const markup = renderToStaticMarkup(createElement(ChunkGrid, { grid: 'CCRPF', total: 6 }))
    expect(cells(markup)).toEqual([
      { index: '0', state: 'completed', title: 'chunk 0: completed' },
      { index: '1', state: 'completed', title: 'chunk 1: completed' },
      { index: '2', state: 'processing', title: 'chunk 2: processing' },
      { index: '3', state: 'pending', title: 'chunk 3: pending' },
      { index: '4', state: 'failed', title: 'chunk 4: failed' },
      { index: '5', state: 'pending', title: 'chunk 5: pending' },
    ])
    expect(markup).toContain('role="img" aria-label="6 chunks: 2 pending, 1 processing, 2 completed, 1 failed"')
    expect(markup).toContain('data-testid="chunks-completed">2<')
    expect(markup).toContain('data-testid="chunks-pending">2<')
    expect(markup).toMatch(/data-state="failed" title="chunk 4: failed" class="bg-red-600/)
  })
  it('draws nothing before the upload is planned', () => {
    expect(renderToStaticMarkup(createElement(ChunkGrid, { grid: '', total: 0 }))).toBe('')
  })
  it('keeps 10,000 cells small', () => {
    const markup = renderToStaticMarkup(createElement(ChunkGrid, { grid: 'C'.repeat(10_000), total: 10_000 }))
    expect(cells(markup)).toHaveLength(10_000)
    expect(markup).toContain('width:6px;height:6px')
    expect(markup).toContain('aria-label="10.000 chunks: 10.000 completed"')
  })
})

describe('ChunkTimingsLine', () => {
  const timings: ChunkTimings = {
    chunks: 3,
    min_seconds: 0.5,
    median_seconds: 1.25,
    max_seconds: 4.5,
    total_seconds: 6.25,
    elapsed_seconds: 5,
    rows: 250_000,
    rows_per_second: 50_000,
    rows_per_chunk_second: 40_000,
  }
  it('says the rate and names the slowest chunk', () => {
    const markup = renderToStaticMarkup(
      createElement(ChunkTimingsLine, { timings, slowest: [{ index: 7, seconds: 4.5, rows: 130_000, attempts: 2 }] }),
    )
    const text = markup.replace(/<[^>]+>/g, '')
    expect(text).toBe('50.000 rows/s · chunk time median 1,25 s, max 4,50 s · slowest chunk 7 (4,50 s, 130.000 rows, 2 attempts)')
  })
  it('shows nothing before a chunk completed', () => {
    expect(renderToStaticMarkup(createElement(ChunkTimingsLine, { timings: null, slowest: [] }))).toBe('')
  })
})

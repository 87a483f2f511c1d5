import { createElement } from 'react'
import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import type { DocumentTotal, ResultsLink } from '../lib/types'
import { ResultsPanel } from './ResultsPanel'

const top: DocumentTotal[] = [
  { document: '12ABC34501DE35', type: 'cnpj', rows: 1234, amount: '9876543.21' },
  { document: '52998224725', type: 'cpf', rows: 2, amount: '1234.50' },
]
const link: ResultsLink = { url: 'https://s3.test/results/u-1/totals.csv?X-Amz-Signature=a&b=c', expires_at: '2030-01-01T00:15:00Z' }

function render(props: { documentsTotal?: number; topDocuments?: DocumentTotal[]; link?: ResultsLink | null; linkError?: string | null }) {
  const markup = renderToStaticMarkup(
    createElement(ResultsPanel, {
      documentsTotal: props.documentsTotal ?? 4567,
      topDocuments: props.topDocuments ?? top,
      link: props.link ?? null,
      linkError: props.linkError ?? null,
    }),
  )
  // The text a person reads, cell by cell.
  const text = markup.replace(/<[^>]+>/g, '|').replace(/\|+/g, '|')
  return { markup, text }
}

describe('ResultsPanel', () => {
  it('shows the count and the largest documents, masked, in the order given', () => {
    const { markup, text } = render({})
    expect(markup).toContain('data-testid="results-panel"')
    expect(text).toContain('|Documents|4.567|')
    expect(text).toContain('|12.ABC.345/01DE-35|CNPJ|1.234|R$ 9.876.543,21|')
    expect(text).toContain('|529.982.247-25|CPF|2|R$ 1.234,50|')
    expect(text.indexOf('12.ABC.345')).toBeLessThan(text.indexOf('529.982.247'))
  })

  it('links the CSV once the link is there, and says it is coming before', () => {
    const pending = render({})
    expect(pending.markup).toContain('data-testid="download-pending"')
    expect(pending.markup).not.toContain('download-results')
    const ready = render({ link })
    expect(ready.markup).toContain('href="https://s3.test/results/u-1/totals.csv?X-Amz-Signature=a&amp;b=c"')
    expect(ready.markup).toMatch(/<a [^>]*download=""[^>]*data-testid="download-results"/)
    expect(ready.text).toContain('Download totals (CSV, 4.567 documents)')
    expect(ready.markup).not.toContain('download-pending')
  })

  it('says why there is no link, and keeps one that still works beside the message', () => {
    const failed = render({ linkError: 'Could not get the download link: offline.' })
    expect(failed.markup).toContain('data-testid="results-error"')
    expect(failed.text).toContain('Could not get the download link: offline.')
    expect(failed.markup).not.toContain('download-pending')
    expect(render({ link, linkError: 'Could not get the download link: offline.' }).markup).toContain('download-results')
  })

  it('says so when no row was valid', () => {
    const { markup } = render({ documentsTotal: 0, topDocuments: [] })
    expect(markup).toContain('data-testid="no-documents"')
    expect(markup).not.toContain('data-testid="top-documents"')
  })
})

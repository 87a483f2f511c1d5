import { formatBRL, formatCount } from '../lib/format'
import { formatDocument } from '../lib/results'
import type { DocumentTotal, ResultsLink } from '../lib/types'
import { Alert, Card, CardTitle, Stat } from './ui'

const TYPE_LABELS: Record<string, string> = { cpf: 'CPF', cnpj: 'CNPJ' }

/** The consolidated totals of a processed upload: how many documents, the largest, the CSV. */
export function ResultsPanel({
  documentsTotal,
  topDocuments,
  link,
  linkError,
}: {
  documentsTotal: number
  topDocuments: DocumentTotal[]
  link: ResultsLink | null
  linkError: string | null
}) {
  return (
    <Card aria-labelledby="results-title" data-testid="results-panel">
      <CardTitle id="results-title">Results</CardTitle>
      <dl className="mb-4 grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat label="Documents" testId="documents-total" value={formatCount(documentsTotal)} />
      </dl>
      {topDocuments.length > 0 ? (
        <div className="mb-4 overflow-auto rounded-md border border-slate-200">
          <table className="w-full text-left text-sm" data-testid="top-documents">
            <caption className="bg-slate-50 px-3 py-2 text-left text-sm font-medium text-slate-700">
              Largest documents by amount
            </caption>
            <thead className="bg-slate-100 text-xs uppercase text-slate-600">
              <tr>
                <th scope="col" className="px-3 py-2">Document</th>
                <th scope="col" className="px-3 py-2">Type</th>
                <th scope="col" className="px-3 py-2 text-right">Rows</th>
                <th scope="col" className="px-3 py-2 text-right">Amount</th>
              </tr>
            </thead>
            <tbody>
              {topDocuments.map((total) => (
                <tr key={total.document} className="border-t border-slate-100">
                  <td className="px-3 py-1.5 font-mono text-xs">{formatDocument(total.document)}</td>
                  <td className="px-3 py-1.5">{TYPE_LABELS[total.type] ?? total.type}</td>
                  <td className="px-3 py-1.5 text-right tabular-nums">{formatCount(total.rows)}</td>
                  <td className="px-3 py-1.5 text-right tabular-nums">{formatBRL(total.amount)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        documentsTotal === 0 && (
          <p className="mb-4 text-sm text-slate-600" data-testid="no-documents">
            No valid row: there is no document to total.
          </p>
        )
      )}
      <div className="flex flex-wrap items-center gap-3">
        {link ? (
          <a
            href={link.url}
            download
            data-testid="download-results"
            className="inline-flex items-center justify-center gap-2 rounded-md bg-indigo-600 px-4 py-2 text-sm font-medium text-white shadow-sm hover:bg-indigo-700"
          >
            Download totals (CSV, {formatCount(documentsTotal)} documents)
          </a>
        ) : (
          !linkError && (
            <span className="text-sm text-slate-600" data-testid="download-pending">
              Preparing the download link…
            </span>
          )
        )}
      </div>
      {linkError && (
        <div className="mt-3">
          <Alert tone="warning" testId="results-error">
            {linkError}
          </Alert>
        </div>
      )}
    </Card>
  )
}

import { describeDelimiter } from '../lib/format'
import type { PreviewResponse } from '../lib/types'
import { Badge, Card, CardTitle } from './ui'

export function PreviewPanel({ preview }: { preview: PreviewResponse }) {
  const mapped = Object.entries(preview.columns).filter(([, v]) => v)
  const invalid = preview.rows.filter((r) => !r.valid).length
  return (
    <Card aria-labelledby="preview-title" data-testid="preview">
      <CardTitle id="preview-title">Preview of the first rows</CardTitle>
      <dl className="mb-4 grid grid-cols-1 gap-3 text-sm sm:grid-cols-3">
        <div>
          <dt className="text-slate-500">Encoding</dt>
          <dd className="font-medium" data-testid="preview-encoding">
            {preview.encoding}
          </dd>
        </div>
        <div>
          <dt className="text-slate-500">Delimiter</dt>
          <dd className="font-medium" data-testid="preview-delimiter">
            {describeDelimiter(preview.delimiter)}
          </dd>
        </div>
        <div>
          <dt className="text-slate-500">Rows checked</dt>
          <dd className="font-medium">
            {preview.rows.length} ({invalid} with problems)
          </dd>
        </div>
      </dl>
      <p className="mb-2 text-sm text-slate-500">Columns recognised</p>
      <ul className="mb-4 flex flex-wrap gap-2" data-testid="preview-columns">
        {mapped.map(([role, column]) => (
          <li key={role}>
            <Badge tone="progress">
              {role} → {column}
            </Badge>
          </li>
        ))}
      </ul>
      <div className="max-h-80 overflow-auto rounded-md border border-slate-200">
        <table className="w-full text-left text-sm" data-testid="preview-rows">
          <caption className="sr-only">First rows of the file and whether each is valid</caption>
          <thead className="sticky top-0 bg-slate-100 text-xs uppercase text-slate-600">
            <tr>
              <th scope="col" className="px-3 py-2">
                Line
              </th>
              {preview.header.map((h, i) => (
                <th key={`${h}-${i}`} scope="col" className="px-3 py-2">
                  {h}
                </th>
              ))}
              <th scope="col" className="px-3 py-2">
                Verdict
              </th>
            </tr>
          </thead>
          <tbody>
            {preview.rows.map((row) => (
              <tr key={row.line} className="border-t border-slate-100 align-top">
                <td className="px-3 py-1.5 tabular-nums text-slate-500">{row.line}</td>
                {preview.header.map((_, i) => (
                  <td key={i} className="px-3 py-1.5 whitespace-nowrap">
                    {row.values[i] ?? ''}
                  </td>
                ))}
                <td className="px-3 py-1.5">
                  {row.valid ? (
                    <Badge tone="success">valid</Badge>
                  ) : (
                    <span className="flex flex-col gap-1">
                      <Badge tone="danger">invalid</Badge>
                      {row.errors.map((e, i) => (
                        <span key={i} className="text-xs text-red-700">
                          {e.message}
                        </span>
                      ))}
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Card>
  )
}

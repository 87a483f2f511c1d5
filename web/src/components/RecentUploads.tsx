import { formatBytes } from '../lib/format'
import type { RecentUpload } from '../lib/storage'
import { Button, Card, CardTitle } from './ui'

export function RecentUploads({
  items,
  activeId,
  onOpen,
}: {
  items: RecentUpload[]
  activeId: string | null
  onOpen: (item: RecentUpload) => void
}) {
  if (items.length === 0) return null
  return (
    <Card aria-labelledby="recent-title">
      <CardTitle id="recent-title">Recent uploads</CardTitle>
      <ul className="divide-y divide-slate-100" data-testid="recent-uploads">
        {items.map((item) => (
          <li key={item.upload_id} className="flex items-center justify-between gap-3 py-2">
            <div className="min-w-0">
              <p className="truncate text-sm font-medium">{item.filename}</p>
              <p className="text-xs text-slate-500">
                {formatBytes(item.size)} · {new Date(item.created_at).toLocaleString()}
              </p>
            </div>
            <Button
              variant="ghost"
              onClick={() => onOpen(item)}
              aria-label={`Show the status of ${item.filename}`}
              aria-current={item.upload_id === activeId ? 'true' : undefined}
              data-testid="open-recent"
            >
              Status
            </Button>
          </li>
        ))}
      </ul>
    </Card>
  )
}

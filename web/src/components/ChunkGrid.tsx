// The upload's chunks as a grid of cells coloured by state, redrawn as the status is polled.
import { memo } from 'react'
import { formatCount } from '../lib/format'
import { CHUNK_STATES, chunkStateLabel, countChunkStates, formatChunkSeconds, parseChunkGrid } from '../lib/status'
import type { ChunkState, ChunkTimings, ChunkView } from '../lib/types'

// Static class names, so Tailwind generates them.
const CELL_COLOURS: Record<ChunkState, string> = {
  pending: 'bg-slate-200',
  processing: 'bg-amber-400',
  completed: 'bg-emerald-500',
  failed: 'bg-red-600',
}

/** Smaller cells for more chunks: 10,000 cells still fit in a few hundred pixels. */
function cellPixels(count: number): number {
  if (count <= 100) return 16
  if (count <= 1_000) return 10
  return 6
}

/** Counts in words, for the grid's accessible name ("12 chunks: 7 completed, 3 pending, …"). */
function summary(total: number, counts: Record<ChunkState, number>): string {
  const parts = CHUNK_STATES.filter((state) => counts[state] > 0).map((state) => `${formatCount(counts[state])} ${state}`)
  return `${formatCount(total)} chunk${total === 1 ? '' : 's'}: ${parts.join(', ')}`
}

export const ChunkGrid = memo(function ChunkGrid({ grid, total }: { grid: string; total: number }) {
  const states = parseChunkGrid(grid, total)
  if (states.length === 0) return null
  const counts = countChunkStates(states)
  const size = `${cellPixels(states.length)}px`
  return (
    <figure className="mb-4" data-testid="chunk-grid-panel">
      <figcaption className="mb-2 text-sm font-medium text-slate-700">Chunks</figcaption>
      {/* One accessible name for the whole grid; each cell's title says its chunk and state on hover. */}
      <div role="img" aria-label={summary(states.length, counts)} data-testid="chunk-grid" className="flex flex-wrap gap-px">
        {states.map((state, index) => (
          <span
            key={index}
            data-testid="chunk-cell"
            data-index={index}
            data-state={state}
            title={`chunk ${index}: ${state}`}
            className={`${CELL_COLOURS[state]} rounded-[1px]`}
            style={{ width: size, height: size }}
          />
        ))}
      </div>
      <ul className="mt-2 flex flex-wrap gap-4 text-xs text-slate-600" aria-label="Chunk states" data-testid="chunk-legend">
        {CHUNK_STATES.map((state) => (
          <li key={state} className="flex items-center gap-1.5" data-state={state}>
            <span aria-hidden="true" className={`${CELL_COLOURS[state]} inline-block h-3 w-3 rounded-[1px]`} />
            {chunkStateLabel(state)}: <span data-testid={`chunks-${state}`}>{formatCount(counts[state])}</span>
          </li>
        ))}
      </ul>
    </figure>
  )
})

/** Rows per second and the slowest chunks, once a chunk is done. */
export function ChunkTimingsLine({
  timings,
  slowest,
}: {
  timings: ChunkTimings | null | undefined
  slowest: ChunkView['slowest'] | undefined
}) {
  if (!timings) return null
  const worst = slowest?.[0]
  return (
    <p className="mb-4 text-xs text-slate-600" data-testid="chunk-timings">
      {timings.rows_per_second != null && <>{formatCount(timings.rows_per_second)} rows/s · </>}
      chunk time median {formatChunkSeconds(timings.median_seconds)}, max {formatChunkSeconds(timings.max_seconds)}
      {worst && (
        <>
          {' '}
          · slowest chunk {worst.index} ({formatChunkSeconds(worst.seconds)}, {formatCount(worst.rows)} rows
          {worst.attempts > 1 ? `, ${worst.attempts} attempts` : ''})
        </>
      )}
    </p>
  )
}

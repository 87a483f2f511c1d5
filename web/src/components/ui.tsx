// Small shadcn/ui-style primitives, written here (no generator, no Radix).
import type { ButtonHTMLAttributes, HTMLAttributes, ReactNode } from 'react'
import type { Tone } from '../lib/status'

export function cn(...classes: (string | false | null | undefined)[]): string {
  return classes.filter(Boolean).join(' ')
}

type Variant = 'primary' | 'secondary' | 'danger' | 'ghost'

const VARIANTS: Record<Variant, string> = {
  primary: 'bg-indigo-600 text-white hover:bg-indigo-700 disabled:bg-indigo-300',
  secondary: 'bg-white text-slate-900 border border-slate-300 hover:bg-slate-100 disabled:text-slate-400',
  danger: 'bg-white text-red-700 border border-red-300 hover:bg-red-50 disabled:text-red-300',
  ghost: 'text-indigo-700 hover:bg-indigo-50',
}

export function Button({
  variant = 'primary',
  className,
  type = 'button',
  ...props
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant }) {
  return (
    <button
      type={type}
      className={cn(
        'inline-flex items-center justify-center gap-2 rounded-md px-4 py-2 text-sm font-medium shadow-sm transition-colors disabled:cursor-not-allowed',
        VARIANTS[variant],
        className,
      )}
      {...props}
    />
  )
}

export function Card({ className, ...props }: HTMLAttributes<HTMLElement>) {
  return <section className={cn('rounded-xl border border-slate-200 bg-white p-6 shadow-sm', className)} {...props} />
}

export function CardTitle({ children, id }: { children: ReactNode; id?: string }) {
  return (
    <h2 id={id} className="mb-4 text-lg font-semibold text-slate-900">
      {children}
    </h2>
  )
}

const TONES: Record<Tone, string> = {
  neutral: 'bg-slate-100 text-slate-700 ring-slate-200',
  progress: 'bg-indigo-50 text-indigo-700 ring-indigo-200',
  success: 'bg-emerald-50 text-emerald-800 ring-emerald-200',
  warning: 'bg-amber-50 text-amber-800 ring-amber-200',
  danger: 'bg-red-50 text-red-800 ring-red-200',
}

export function Badge({ tone = 'neutral', className, ...props }: HTMLAttributes<HTMLSpanElement> & { tone?: Tone }) {
  return (
    <span
      className={cn('inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-medium ring-1 ring-inset', TONES[tone], className)}
      {...props}
    />
  )
}

export function ProgressBar({
  value,
  label,
  valueText,
  testId,
}: {
  value: number
  label: string
  valueText: string
  testId?: string
}) {
  const clamped = Math.max(0, Math.min(100, value))
  return (
    <div
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={clamped}
      aria-valuetext={valueText}
      data-testid={testId}
      className="h-3 w-full overflow-hidden rounded-full bg-slate-200"
    >
      {/* No transition: the page updates the bar 5 times a second, so a 300 ms width
          transition animated it all the time, and in headless Chromium that took
          ~1.5 CPU-seconds per 10 s (docs/performance.md), CPU the upload itself needs. */}
      <div className="h-full rounded-full bg-indigo-600" style={{ width: `${clamped}%` }} />
    </div>
  )
}

export function Alert({
  tone = 'danger',
  title,
  children,
  testId,
}: {
  tone?: Tone
  title?: string
  children: ReactNode
  testId?: string
}) {
  return (
    <div role="alert" data-testid={testId} className={cn('rounded-md p-4 text-sm ring-1 ring-inset', TONES[tone])}>
      {title && <p className="font-semibold">{title}</p>}
      <div>{children}</div>
    </div>
  )
}

export function Stat({ label, value, testId }: { label: string; value: ReactNode; testId?: string }) {
  return (
    <div className="rounded-lg bg-slate-50 p-3">
      <dt className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</dt>
      <dd className="mt-1 text-lg font-semibold tabular-nums text-slate-900" data-testid={testId}>
        {value}
      </dd>
    </div>
  )
}

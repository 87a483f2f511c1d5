import { describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError, describeError, errorFromResponse } from './api'

function jsonResponse(status: number, body: unknown): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}

describe('errorFromResponse', () => {
  it('uses the message of the error body', () => {
    const e = errorFromResponse(422, JSON.stringify({ error: 'unmapped_header', message: 'no column holds a CPF/CNPJ', field: 'header' }))
    expect(e).toBeInstanceOf(ApiError)
    expect(e.status).toBe(422)
    expect(e.code).toBe('unmapped_header')
    expect(e.message).toBe('no column holds a CPF/CNPJ')
    expect(e.field).toBe('header')
    expect(e.retryable).toBe(false)
  })
  it('puts a sentence, never raw JSON, when the body is not ours', () => {
    const e = errorFromResponse(502, '<html>Bad gateway</html>')
    expect(e.code).toBe('http_502')
    expect(e.message).toMatch(/upload service had a problem/)
    expect(e.message).not.toMatch(/[{<]/)
    expect(e.retryable).toBe(true)
    expect(errorFromResponse(403, '{"unexpected": true}').message).toMatch(/someone else/)
    expect(errorFromResponse(418, '').message).toBe('HTTP 418 (HTTP 418).')
  })
})

describe('describeError', () => {
  it('gives words for anything', () => {
    expect(describeError(new ApiError(409, 'upload_completed', 'the upload is already complete'))).toBe('the upload is already complete')
    expect(describeError(new Error('boom'))).toBe('boom')
    expect(describeError('???')).toBe('Something went wrong.')
  })
})

describe('ApiClient', () => {
  it('sends the bearer token and JSON, and parses the answer', async () => {
    const fetchImpl = vi.fn(async (_url: string, _init?: RequestInit) =>
      jsonResponse(200, { urls: { '1': 'https://s3/x' }, expires_at: '2030-01-01T00:00:00Z' }),
    )
    const api = new ApiClient('http://api.test/', fetchImpl)
    const answer = await api.signParts('u1', 'tok', [1], { '1': 'AAAAAA==' })
    expect(answer.urls['1']).toBe('https://s3/x')
    const [url, init] = fetchImpl.mock.calls[0]!
    expect(url).toBe('http://api.test/uploads/u1/parts')
    expect(init?.method).toBe('POST')
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok')
    expect(JSON.parse(init?.body as string)).toEqual({ part_numbers: [1], checksums: { '1': 'AAAAAA==' } })
  })

  it('posts the preview as raw text/csv', async () => {
    const fetchImpl = vi.fn(async () => jsonResponse(200, { encoding: 'utf-8', delimiter: ';', header: [], columns: {}, rows: [] }))
    const api = new ApiClient('http://api.test', fetchImpl)
    const head = new Blob(['documento;valor\n'])
    await api.preview(head)
    const init = (fetchImpl.mock.calls[0] as unknown as [string, RequestInit])[1]
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('text/csv')
    expect(init.body).toBe(head)
  })

  it('asks the preview with the file size, and initiate with the head start parts to sign', async () => {
    const fetchImpl = vi.fn(async (_url: string, _init?: RequestInit) => jsonResponse(200, {}))
    const api = new ApiClient('http://api.test', fetchImpl)
    await api.preview(new Blob(['documento;valor\n']), 512 * 1024 * 1024)
    expect(fetchImpl.mock.calls[0]![0]).toBe('http://api.test/preview?size=536870912')
    const sign = { part_size: 8, part_numbers: [1], checksums: { '1': 'AAAAAA==' } }
    await api.createUpload('a.csv', 20, sign)
    expect(JSON.parse(fetchImpl.mock.calls[1]![1]?.body as string)).toEqual({
      filename: 'a.csv',
      size: 20,
      content_type: 'text/csv',
      sign,
    })
    await api.createUpload('a.csv', 20, { part_size: 8, part_numbers: [] })
    expect(JSON.parse(fetchImpl.mock.calls[2]![1]?.body as string)).not.toHaveProperty('sign')
  })

  it('maps HTTP errors to ApiError with the server message', async () => {
    const api = new ApiClient('http://api.test', async () => jsonResponse(413, { error: 'too_large', message: 'size exceeds the maximum', field: 'size' }))
    await expect(api.createUpload('a.csv', 1)).rejects.toMatchObject({ status: 413, code: 'too_large', message: 'size exceeds the maximum' })
  })

  it('maps a network failure to words', async () => {
    const api = new ApiClient('http://api.test', async () => {
      throw new TypeError('Failed to fetch')
    })
    const error = await api.status('u', 't').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).status).toBe(0)
    expect((error as ApiError).retryable).toBe(true)
    expect((error as ApiError).message).toMatch(/Could not reach the upload service at http:\/\/api.test/)
  })

  it('refuses a non-JSON success', async () => {
    const api = new ApiClient('http://api.test', async () => new Response('not json', { status: 200 }))
    await expect(api.health()).rejects.toMatchObject({ code: 'bad_response' })
  })

  it('lists parts and completes with part numbers, etags and checksums', async () => {
    const calls: [string, RequestInit | undefined][] = []
    const api = new ApiClient('http://api.test', async (url, init) => {
      calls.push([url, init])
      if (url.endsWith('/parts')) return jsonResponse(200, { parts: [{ part_number: 1, size: 5, etag: '"e1"' }] })
      return jsonResponse(200, { upload_id: 'u', status: 'uploaded', key: 'k', size: 5, etag: 'x' })
    })
    expect(await api.listParts('u', 't')).toEqual([{ part_number: 1, size: 5, etag: '"e1"' }])
    await api.complete('u', 't', [{ part_number: 1, etag: '"e1"', checksum_crc32: 'y/Q5Jg==' }])
    expect(JSON.parse(calls[1]![1]!.body as string)).toEqual({
      parts: [{ part_number: 1, etag: '"e1"', checksum_crc32: 'y/Q5Jg==' }],
    })
    await api.complete('u', 't')
    expect(JSON.parse(calls[2]![1]!.body as string)).toEqual({})
  })
})

describe('ApiClient.results', () => {
  const page = {
    upload_id: 'u 1',
    documents: [{ document: '52998224725', type: 'cpf', rows: 2, amount: '1234.50' }],
    next_cursor: 'eyJzaGFyZCI6MH0',
    documents_total: 3,
    download: { url: 'https://s3.test/results/u/totals.csv?X-Amz-Signature=s', expires_at: '2030-01-01T00:15:00Z' },
  }

  it('asks for a page with the token, the cursor and the page size, and answers it as sent', async () => {
    const fetchImpl = vi.fn(async (_url: string, _init?: RequestInit) => jsonResponse(200, page))
    const api = new ApiClient('http://api.test', fetchImpl)
    expect(await api.results('u 1', 'tok', { cursor: 'a+b/c=', limit: 50 })).toEqual(page)
    const [url, init] = fetchImpl.mock.calls[0]!
    expect(url).toBe('http://api.test/uploads/u%201/results?cursor=a%2Bb%2Fc%3D&limit=50')
    expect(init?.method).toBe('GET')
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok')
    await api.results('u', 'tok')
    expect(fetchImpl.mock.calls[1]![0]).toBe('http://api.test/uploads/u/results')
  })

  it('says in words that the results are not ready, and which field a refusal names', async () => {
    const notReady = { error: 'results_not_ready', message: 'upload u is processing: the totals are ready once processing completes', status: 'processing' }
    const api = new ApiClient('http://api.test', async () => jsonResponse(409, notReady))
    await expect(api.results('u', 't')).rejects.toMatchObject({ status: 409, code: 'results_not_ready', message: notReady.message, retryable: false })
    const badCursor = new ApiClient('http://api.test', async () =>
      jsonResponse(400, { error: 'invalid_cursor', message: 'cursor belongs to another upload', field: 'cursor' }),
    )
    await expect(badCursor.results('u', 't', { cursor: 'x' })).rejects.toMatchObject({ status: 400, field: 'cursor' })
  })
})

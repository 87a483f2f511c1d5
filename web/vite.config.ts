import tailwindcss from '@tailwindcss/vite'
import react from '@vitejs/plugin-react'
import type { Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

// No API URL is baked into the build: the page reads /config.json at start-up.
// In production `upflow.local.webserver` (or the site bucket) serves that file;
// `npm run dev` answers it from UPFLOW_API_URL so the dev server works alone.
function devConfigJson(): Plugin {
  return {
    name: 'upflow-dev-config-json',
    apply: 'serve',
    configureServer(server) {
      server.middlewares.use('/config.json', (_req, res) => {
        res.setHeader('Content-Type', 'application/json')
        res.setHeader('Cache-Control', 'no-store')
        res.end(JSON.stringify({ apiUrl: process.env.UPFLOW_API_URL ?? 'http://127.0.0.1:8000' }))
      })
    },
  }
}

export default defineConfig({
  plugins: [react(), tailwindcss(), devConfigJson()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})

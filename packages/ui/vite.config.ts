import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Served by the management server under /client (next to /client/api); `npm run dev -w packages/ui`
// proxies the API to a server on NIMBOSTACK_URL (default http://127.0.0.1:8080).
export default defineConfig({
  base: '/client/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: {
    proxy: { '/client/api': process.env.NIMBOSTACK_URL ?? 'http://127.0.0.1:8080' },
  },
});

// Vite serves the UI to the Tauri shell: on 127.0.0.1:5173 in development
// (tauri.conf.json's devUrl), built into dist/ for the bundle.
import { defineConfig } from "vitest/config";
import preact from "@preact/preset-vite";

export default defineConfig({
  plugins: [preact()],
  clearScreen: false,
  envPrefix: ["VITE_", "TAURI_"],
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK 2.4x (Linux), WebView2 (Windows) and WKWebView are all at
    // least this.
    target: "safari13",
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});

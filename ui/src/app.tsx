// The window: the status line, the left navigation, the page, and the
// dialogs the shell can ask for (quit). Holds the service's status, kept
// fresh by the shell's `status-changed` event and a poll as a fallback.

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { commands, events, type AppStatus, type DriveInfo, type Page } from "./bindings";
import { AddDrive } from "./pages/add";
import { Activity } from "./pages/activity";
import { Drives } from "./pages/drives";
import { Snapshots } from "./pages/snapshots";
import { SettingsPage } from "./pages/settings";
import { Dialog } from "./ui";

const POLL_MS = 5000;

export type Notice = { text: string; error: boolean; details: string[] };

/** What every page gets from the window. */
export type Ctx = {
  status: AppStatus | null;
  infos: DriveInfo[];
  refresh: () => Promise<void>;
  notify: (text: string, error?: boolean, details?: string[]) => void;
  go: (page: Page) => void;
};

const PAGES: { id: Page; label: string }[] = [
  { id: "drives", label: "Drives" },
  { id: "add", label: "Add a drive" },
  { id: "activity", label: "Activity" },
  { id: "snapshots", label: "Snapshots" },
  { id: "settings", label: "Settings" },
];

function namesOf(s: AppStatus | null): string {
  return (s?.service?.drives ?? []).map((d) => d.name).join("\n");
}

export function App() {
  const [page, setPage] = useState<Page>("drives");
  const [status, setStatus] = useState<AppStatus | null>(null);
  const [infos, setInfos] = useState<DriveInfo[]>([]);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [quitWarning, setQuitWarning] = useState<string | null>(null);
  const [quitting, setQuitting] = useState(false);
  const known = useRef<string | null>(null);
  const main = useRef<HTMLElement>(null);

  const loadInfos = useCallback(async () => {
    const r = await commands.drives();
    if (r.status === "ok") setInfos(r.data);
  }, []);

  const take = useCallback(
    (s: AppStatus) => {
      setStatus(s);
      // The drives' settings change only when drives come and go, or
      // after an action (which refreshes them itself).
      const names = namesOf(s);
      if (s.service && names !== known.current) {
        known.current = names;
        void loadInfos();
      }
    },
    [loadInfos],
  );

  const refresh = useCallback(async () => {
    const [r] = await Promise.all([commands.status(), loadInfos()]);
    if (r.status === "ok") take(r.data);
  }, [loadInfos, take]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => {
      void commands.status().then((r) => r.status === "ok" && take(r.data)).catch(() => {});
    }, POLL_MS);
    const unlisten = [
      events.statusChanged.listen((e) => take(e.payload)),
      events.navigate.listen((e) => setPage(e.payload.page)),
      events.quitRequested.listen((e) => setQuitWarning(e.payload.warning)),
    ];
    return () => {
      clearInterval(timer);
      for (const u of unlisten) void u.then((f) => f()).catch(() => {});
    };
  }, [refresh, take]);

  const notify = useCallback((text: string, error = false, details: string[] = []) => {
    setNotice({ text, error, details });
  }, []);

  // A page asked for by the code keeps the notice it just set (a drive was
  // added); one the person chooses starts clean.
  const go = useCallback((p: Page) => setPage(p), []);

  // A new page moves focus to its heading, so a screen reader says where
  // the person is. In the same commit as the render (a layout effect), so
  // it never takes focus from a field the person already went to.
  useLayoutEffect(() => {
    const headings = Array.from(main.current?.querySelectorAll<HTMLElement>("h1") ?? []);
    headings.find((h) => h.offsetParent !== null)?.focus();
  }, [page]);

  async function quitAnyway() {
    setQuitting(true);
    const r = await commands.quit(true);
    setQuitting(false);
    if (r.status === "error") notify(r.error.message, true);
    setQuitWarning(null);
  }

  const ctx: Ctx = { status, infos, refresh, notify, go };
  const line = status ? status.summary.line : "Connecting to Nimbus…";

  return (
    <div class="app">
      <header class="top">
        <span class={`dot icon-${status?.summary.icon ?? "offline"}`} aria-hidden="true" />
        <p class="status-line" data-testid="status-line" role="status" aria-live="polite">
          {line}
        </p>
      </header>
      <nav class="nav" aria-label="Pages">
        <ul>
          {PAGES.map((p) => (
            <li key={p.id}>
              <button
                type="button"
                data-testid={`nav-${p.id}`}
                aria-current={page === p.id ? "page" : undefined}
                onClick={() => {
                  setNotice(null);
                  go(p.id);
                }}
              >
                {p.label}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <main class="main" ref={main}>
        <div class="notice-area" aria-live="polite">
          {notice && (
            <div class={notice.error ? "notice error-notice" : "notice"} data-testid="notice">
              <p>{notice.text}</p>
              {notice.details.length > 0 && (
                <ul>
                  {notice.details.map((d) => (
                    <li key={d}>{d}</li>
                  ))}
                </ul>
              )}
              <button type="button" class="link" onClick={() => setNotice(null)} aria-label="Dismiss this message">
                Dismiss
              </button>
            </div>
          )}
        </div>
        {page === "drives" && <Drives {...ctx} />}
        {/* The wizard stays mounted, so a half-filled form, or a recovery key
            not yet confirmed, survives a visit to another page. */}
        <div hidden={page !== "add"}>
          <AddDrive {...ctx} />
        </div>
        {page === "activity" && <Activity {...ctx} />}
        {page === "snapshots" && <Snapshots {...ctx} />}
        {page === "settings" && <SettingsPage {...ctx} />}
      </main>
      {quitWarning !== null && (
        <Dialog title="Quit Nimbus?" onClose={() => setQuitWarning(null)} testid="quit-dialog">
          <p>{quitWarning}</p>
          <div class="actions">
            <button type="button" data-testid="quit-cancel" data-autofocus onClick={() => setQuitWarning(null)}>
              Keep Nimbus running
            </button>
            <button type="button" class="danger" data-testid="quit-anyway" disabled={quitting} onClick={quitAnyway}>
              Quit anyway
            </button>
          </div>
        </Dialog>
      )}
    </div>
  );
}

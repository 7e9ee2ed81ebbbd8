// The Activity page: what is being transferred now, then what happened
// (changes, conflicts, warnings, errors), newest first.

import { useEffect, useState } from "preact/hooks";
import type { Ctx } from "../app";
import { commands, events, type ActivityItem, type ActivityKind, type UiError } from "../bindings";
import type { Result } from "../result";
import { humanBytes, humanRate, pendingLine, relativeTime } from "../format";

/**
 * The list `activity` answers. The contract gives a plain list; src-tauri's
 * command is written as a `Result` today. Either compiles and works here.
 */
async function loadActivity(): Promise<ActivityItem[]> {
  const r = (await commands.activity()) as ActivityItem[] | Result<ActivityItem[], UiError>;
  if (Array.isArray(r)) return r;
  return r.status === "ok" ? r.data : [];
}

const KIND: Record<ActivityKind, { label: string; icon: string }> = {
  change: { label: "Change", icon: "↻" },
  conflict: { label: "Conflict", icon: "⇄" },
  warning: { label: "Warning", icon: "!" },
  error: { label: "Error", icon: "✕" },
};

export function Activity(ctx: Ctx) {
  const [items, setItems] = useState<ActivityItem[] | null>(null);
  const [, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    const early: ActivityItem[] = [];
    let loaded = false;
    const unlisten = events.activityAdded.listen((e) => {
      if (!loaded) early.unshift(e.payload);
      else setItems((cur) => [e.payload, ...(cur ?? [])]);
    });
    void loadActivity()
      .then((list) => {
        if (!live) return;
        loaded = true;
        // Items that came by event while the list loaded are in it, or newer.
        const newer = early.filter((x) => !list.some((y) => y.time === x.time && y.text === x.text));
        setItems([...newer, ...list]);
      })
      .catch(() => live && setItems([]));
    // Keeps "5 min ago" true.
    const timer = setInterval(() => setTick((t) => t + 1), 30_000);
    return () => {
      live = false;
      clearInterval(timer);
      void unlisten.then((f) => f()).catch(() => {});
    };
  }, []);

  const drives = ctx.status?.service?.drives ?? [];
  const moving = drives.filter(
    (d) =>
      d.transfers.uploading_bytes > 0 ||
      d.transfers.upload_rate > 0 ||
      d.transfers.download_rate > 0 ||
      d.pending_files > 0 ||
      d.pending_bytes > 0,
  );

  return (
    <section aria-labelledby="activity-title">
      <h1 id="activity-title" tabIndex={-1}>
        Activity
      </h1>
      <h2>Transfers</h2>
      {moving.length === 0 ? (
        <p class="empty-line">Nothing is being transferred.</p>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Drive</th>
              <th scope="col">Uploading</th>
              <th scope="col">Up</th>
              <th scope="col">Down</th>
              <th scope="col">Waiting</th>
            </tr>
          </thead>
          <tbody>
            {moving.map((d) => (
              <tr key={d.name} data-testid="transfer-row" data-drive={d.name}>
                <th scope="row">{d.name}</th>
                <td>{humanBytes(d.transfers.uploading_bytes)}</td>
                <td>{humanRate(d.transfers.upload_rate)}</td>
                <td>{humanRate(d.transfers.download_rate)}</td>
                <td>{pendingLine(d.pending_files, d.pending_bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>What happened</h2>
      {items === null ? (
        <p class="empty-line">Loading…</p>
      ) : items.length === 0 ? (
        <p class="empty-line">Nothing yet. Changes, conflicts and problems of your drives show here.</p>
      ) : (
        <ul class="activity" aria-live="polite">
          {items.map((it, i) => (
            <li key={`${it.time}-${i}-${it.text}`} class={`item kind-${it.kind}`} data-testid="activity-item" data-kind={it.kind}>
              <span class="kind-icon" aria-hidden="true">
                {KIND[it.kind]?.icon ?? "•"}
              </span>
              <div>
                <p class="item-head">
                  <span class={`tag tag-${it.kind}`}>{KIND[it.kind]?.label ?? it.kind}</span>
                  {it.drive && <span class="item-drive">{it.drive}</span>}
                  <time dateTime={new Date(it.time * 1000).toISOString()} title={new Date(it.time * 1000).toLocaleString()}>
                    {relativeTime(it.time)}
                  </time>
                </p>
                <p>{it.text}</p>
                {it.hint && <p class="hint">What to do: {it.hint}</p>}
                {it.drive && it.path && <ItemButtons drive={it.drive} path={it.path} ctx={ctx} />}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Open and Show in folder, for an item about one file of a drive. */
function ItemButtons({ drive, path, ctx }: { drive: string; path: string; ctx: Ctx }) {
  async function run(action: () => Promise<Result<null, UiError>>) {
    const r = await action();
    if (r.status === "error") ctx.notify(r.error.message, true);
  }
  return (
    <div class="buttons" role="group" aria-label={`Actions for ${path}`}>
      <button type="button" data-testid="activity-open" onClick={() => void run(() => commands.openInDrive(drive, path))}>
        Open
      </button>
      <button
        type="button"
        data-testid="activity-show"
        onClick={() => void run(() => commands.showInFolder(drive, path))}
      >
        Show in folder
      </button>
    </div>
  );
}

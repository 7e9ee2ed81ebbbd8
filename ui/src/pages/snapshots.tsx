// The Snapshots page: a drive's snapshots as a time line, the folders of
// one snapshot, and restoring a file or folder from it.

import { useEffect, useState } from "preact/hooks";
import type { Ctx } from "../app";
import { commands, type Entry, type SnapshotInfo } from "../bindings";
import { clockTime, dayHeading, dayKey, humanBytes, relativeTime, restoredLine } from "../format";
import { isAbsolutePath } from "../wizard";
import { Dialog, Field, valueOf } from "../ui";

type Day = { key: string; heading: string; snaps: SnapshotInfo[] };

function byDay(snaps: SnapshotInfo[]): Day[] {
  const days: Day[] = [];
  for (const s of [...snaps].sort((a, b) => b.time - a.time)) {
    const key = dayKey(s.time);
    let day = days[days.length - 1];
    if (!day || day.key !== key) {
      day = { key, heading: dayHeading(s.time), snaps: [] };
      days.push(day);
    }
    day.snaps.push(s);
  }
  return days;
}

function sortEntries(entries: Entry[]): Entry[] {
  return [...entries].sort((a, b) => (a.dir !== b.dir ? (a.dir ? -1 : 1) : a.name.localeCompare(b.name)));
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}/${name}`;
}

export function Snapshots(ctx: Ctx) {
  const names = ctx.infos.length > 0 ? ctx.infos.map((i) => i.name) : (ctx.status?.service?.drives ?? []).map((d) => d.name);
  const [drive, setDrive] = useState<string>("");
  const [snaps, setSnaps] = useState<SnapshotInfo[] | null>(null);
  const [snap, setSnap] = useState<SnapshotInfo | null>(null);
  const [path, setPath] = useState("");
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [restoring, setRestoring] = useState<Entry | null>(null);
  const [result, setResult] = useState<string | null>(null);

  const current = drive !== "" && names.includes(drive) ? drive : (names[0] ?? "");

  useEffect(() => {
    if (current === "") return;
    let live = true;
    setSnaps(null);
    setSnap(null);
    setEntries(null);
    setError(null);
    void commands.snapshots(current).then((r) => {
      if (!live) return;
      if (r.status === "ok") setSnaps(r.data);
      else {
        setSnaps([]);
        setError(r.error.message);
      }
    });
    return () => {
      live = false;
    };
  }, [current]);

  async function open(s: SnapshotInfo, p: string) {
    setSnap(s);
    setPath(p);
    setEntries(null);
    setError(null);
    const r = await commands.browse(current, s.id, p);
    if (r.status === "ok") setEntries(sortEntries(r.data));
    else {
      setEntries([]);
      setError(r.error.message);
    }
  }

  if (names.length === 0) {
    return (
      <section aria-labelledby="snap-title">
        <h1 id="snap-title" tabIndex={-1}>
          Snapshots
        </h1>
        <p class="empty-line">No drives yet: snapshots appear once a drive has synced.</p>
      </section>
    );
  }

  const crumbs = path === "" ? [] : path.split("/");

  return (
    <section aria-labelledby="snap-title">
      <h1 id="snap-title" tabIndex={-1}>
        Snapshots
      </h1>
      <div class="field inline">
        <label for="snap-drive">Drive</label>
        <select
          id="snap-drive"
          data-testid="snap-drive"
          value={current}
          onChange={(e) => {
            setDrive(valueOf(e));
            setResult(null);
          }}
        >
          {names.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div aria-live="polite">
        {result && (
          <p class="verdict ok" data-testid="restore-result">
            {result}
          </p>
        )}
      </div>
      <div class="snap-layout">
        <nav class="timeline" aria-label="Snapshots of this drive">
          {snaps === null ? (
            <p class="empty-line">Loading…</p>
          ) : snaps.length === 0 ? (
            <p class="empty-line">No snapshots yet. Nimbus makes one each time changes are uploaded.</p>
          ) : (
            byDay(snaps).map((day) => (
              <div key={day.key} class="day">
                <h2>{day.heading}</h2>
                <ul>
                  {day.snaps.map((s) => (
                    <li key={s.id}>
                      <button
                        type="button"
                        data-testid="snap-item"
                        data-name={s.name}
                        aria-current={snap?.id === s.id ? "true" : undefined}
                        onClick={() => void open(s, "")}
                      >
                        <span class="snap-time">{clockTime(new Date(s.time * 1000))}</span>
                        <span class="snap-device">{s.device}</span>
                      </button>
                    </li>
                  ))}
                </ul>
              </div>
            ))
          )}
        </nav>
        <div class="browser">
          {snap === null ? (
            <p class="empty-line">Choose a snapshot to see its files.</p>
          ) : (
            <>
              <nav aria-label="Folder">
                <ol class="crumbs">
                  <li>
                    <button type="button" data-testid="crumb" onClick={() => void open(snap, "")}>
                      {current}
                    </button>
                  </li>
                  {crumbs.map((c, i) => (
                    <li key={i}>
                      <button
                        type="button"
                        data-testid="crumb"
                        aria-current={i === crumbs.length - 1 ? "location" : undefined}
                        onClick={() => void open(snap, crumbs.slice(0, i + 1).join("/"))}
                      >
                        {c}
                      </button>
                    </li>
                  ))}
                </ol>
              </nav>
              <p class="hint">
                As it was {relativeTime(snap.time)}, {new Date(snap.time * 1000).toLocaleString()}, from {snap.device}.
              </p>
              {entries === null ? (
                <p class="empty-line">Loading…</p>
              ) : entries.length === 0 ? (
                <p class="empty-line">This folder is empty.</p>
              ) : (
                <table class="table entries">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Size</th>
                      <th scope="col">Modified</th>
                      <th scope="col">
                        <span class="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {entries.map((e) => (
                      <tr key={e.name} data-testid="entry" data-name={e.name} data-dir={e.dir ? "true" : "false"}>
                        <th scope="row">
                          <span class={e.dir ? "ico ico-dir" : "ico ico-file"} aria-hidden="true" />
                          {e.dir && <span class="sr-only">Folder </span>}
                          {e.name}
                        </th>
                        <td>{e.dir ? "—" : humanBytes(e.size)}</td>
                        <td>{e.modified === null ? "—" : relativeTime(e.modified)}</td>
                        <td class="row-actions">
                          {e.dir && (
                            <button
                              type="button"
                              data-testid="entry-open"
                              aria-label={`Open ${e.name}`}
                              onClick={() => void open(snap, join(path, e.name))}
                            >
                              Open
                            </button>
                          )}
                          <button
                            type="button"
                            data-testid="entry-restore"
                            aria-label={`Restore ${e.name}`}
                            onClick={() => {
                              setResult(null);
                              setRestoring(e);
                            }}
                          >
                            Restore…
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          )}
        </div>
      </div>
      {restoring && snap && (
        <RestoreDialog
          drive={current}
          snap={snap}
          path={join(path, restoring.name)}
          onClose={() => setRestoring(null)}
          onDone={(text) => {
            setRestoring(null);
            setResult(text);
          }}
        />
      )}
    </section>
  );
}

type RestoreProps = {
  drive: string;
  snap: SnapshotInfo;
  path: string;
  onClose: () => void;
  onDone: (text: string) => void;
};

function RestoreDialog({ drive, snap, path, onClose, onDone }: RestoreProps) {
  const [elsewhere, setElsewhere] = useState(false);
  const [to, setTo] = useState("");
  const [error, setError] = useState<string | undefined>();
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function restore(e: Event) {
    e.preventDefault();
    if (elsewhere && !isAbsolutePath(to)) {
      setError(to.trim() === "" ? "Give the folder to restore into." : "Give the full path, starting with / or ~/.");
      return;
    }
    setBusy(true);
    setFailure(null);
    const r = await commands.restore(drive, path, snap.id, elsewhere ? to.trim() : null);
    setBusy(false);
    if (r.status === "ok") onDone(restoredLine(r.data.files, r.data.bytes, r.data.to));
    else setFailure(r.error.message);
  }

  return (
    <Dialog title={`Restore ${path.split("/").pop()}`} onClose={onClose}>
      <form onSubmit={restore}>
        <p class="hint">
          From the snapshot of {new Date(snap.time * 1000).toLocaleString()}: <code>{path}</code>
        </p>
        <fieldset>
          <legend class="sr-only">Where to</legend>
          <div class="check">
            <input
              type="radio"
              id="restore-in-place"
              name="where"
              data-testid="restore-in-place"
              checked={!elsewhere}
              onChange={() => setElsewhere(false)}
            />
            <label for="restore-in-place">Put it back in its place</label>
            <p class="hint">Back where it was in the drive, as it was then.</p>
          </div>
          <div class="check">
            <input
              type="radio"
              id="restore-elsewhere"
              name="where"
              data-testid="restore-elsewhere"
              checked={elsewhere}
              onChange={() => setElsewhere(true)}
            />
            <label for="restore-elsewhere">Restore to another folder</label>
          </div>
        </fieldset>
        {elsewhere && (
          <Field
            label="Folder"
            testid="restore-to"
            mono
            value={to}
            placeholder="/home/you/Restored"
            onInput={(v) => {
              setTo(v);
              setError(undefined);
            }}
            error={error}
          />
        )}
        {failure && (
          <p class="error" role="alert">
            {failure}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" data-testid="restore-confirm" disabled={busy}>
            {busy ? "Restoring…" : "Restore"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

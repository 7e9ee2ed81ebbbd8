// The Drives page: one card per drive with its state and what can be done
// with it (mount, open, pause, lock, sync, remove).

import { useState } from "preact/hooks";
import type { Ctx } from "../app";
import { commands, type DriveInfo, type DriveStatus, type UiError, type UiErrorCode } from "../bindings";
import type { Result } from "../result";
import {
  cacheLine,
  cachePercent,
  conflictsLine,
  deviceLine,
  humanBytes,
  lastSyncLine,
  pendingLine,
  ratesLine,
  stateLabel,
} from "../format";
import { Check, Confirm, Dialog, Field } from "../ui";

/** Errors of a keyring unlock that mean: ask the person for the password. */
const ASK_PASSWORD: UiErrorCode[] = ["wrong_password", "keyring", "locked"];

export function Drives(ctx: Ctx) {
  const { status } = ctx;
  const [busy, setBusy] = useState<string | null>(null);
  const [unlocking, setUnlocking] = useState<string | null>(null);
  const [removing, setRemoving] = useState<DriveStatus | null>(null);

  async function run(drive: string, action: () => Promise<Result<unknown, UiError>>, done?: string) {
    setBusy(drive);
    try {
      const r = await action();
      if (r.status === "ok") {
        const text = typeof r.data === "string" && r.data !== "" ? r.data : done;
        if (text) ctx.notify(text);
      } else {
        ctx.notify(r.error.message, true);
      }
      await ctx.refresh();
      return r;
    } finally {
      setBusy(null);
    }
  }

  /** Tries the password saved in the keyring first; asks for it when there is none or it no longer fits. */
  async function unlock(d: DriveStatus) {
    setBusy(d.name);
    try {
      const r = await commands.unlock(d.name, null, false);
      if (r.status === "ok") {
        ctx.notify(r.data || `${d.name} is unlocked.`);
        await ctx.refresh();
      } else if (ASK_PASSWORD.includes(r.error.code)) {
        setUnlocking(d.name);
      } else {
        ctx.notify(r.error.message, true);
      }
    } finally {
      setBusy(null);
    }
  }

  if (!status || !status.service) {
    return (
      <section aria-labelledby="drives-title">
        <h1 id="drives-title" tabIndex={-1}>
          Drives
        </h1>
        <div class="empty">
          <p>{status?.started_service ? "Starting the Nimbus service…" : "Waiting for the Nimbus service…"}</p>
          {status?.connection_error && <p class="error">{status.connection_error}</p>}
          <p class="hint">Nimbus starts its service by itself; this page fills in as soon as it answers.</p>
        </div>
      </section>
    );
  }

  const drives = status.service.drives;
  return (
    <section aria-labelledby="drives-title">
      <h1 id="drives-title" tabIndex={-1}>
        Drives
      </h1>
      {(status.service.warnings ?? []).length > 0 && (
        <ul class="warnings">
          {(status.service.warnings ?? []).map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      )}
      {drives.length === 0 ? (
        <div class="empty">
          <p>No drives yet</p>
          <p class="hint">A drive keeps its files encrypted in a store you choose: S3, WebDAV, SFTP or a folder.</p>
          <button type="button" class="primary" data-testid="drives-add" onClick={() => ctx.go("add")}>
            Add a drive
          </button>
        </div>
      ) : (
        <ul class="cards">
          {drives.map((d) => (
            <DriveCard
              key={d.name}
              d={d}
              info={ctx.infos.find((i) => i.name === d.name)}
              busy={busy === d.name}
              onMount={() => run(d.name, () => commands.mountDrive(d.name), `${d.name} is mounted.`)}
              onUnmount={() => run(d.name, () => commands.unmountDrive(d.name), `${d.name} is unmounted.`)}
              onOpen={() => run(d.name, () => commands.openDrive(d.name))}
              onPause={() => run(d.name, () => commands.pause(d.name), `${d.name} is paused.`)}
              onResume={() => run(d.name, () => commands.resume(d.name), `${d.name} syncs again.`)}
              onLock={() => run(d.name, () => commands.lock(d.name), `${d.name} is locked.`)}
              onUnlock={() => unlock(d)}
              onSync={() => run(d.name, () => commands.syncNow(d.name), `${d.name} is syncing.`)}
              onRemove={() => setRemoving(d)}
            />
          ))}
        </ul>
      )}
      {unlocking && <UnlockDialog drive={unlocking} ctx={ctx} onClose={() => setUnlocking(null)} />}
      {removing && <RemoveDialog d={removing} ctx={ctx} onClose={() => setRemoving(null)} />}
    </section>
  );
}

type CardProps = {
  d: DriveStatus;
  info: DriveInfo | undefined;
  busy: boolean;
  onMount: () => void;
  onUnmount: () => void;
  onOpen: () => void;
  onPause: () => void;
  onResume: () => void;
  onLock: () => void;
  onUnlock: () => void;
  onSync: () => void;
  onRemove: () => void;
};

function DriveCard({ d, info, busy, ...on }: CardProps) {
  const rates = ratesLine(d.transfers.upload_rate, d.transfers.download_rate);
  const pct = cachePercent(d.cache_bytes, d.cache_limit_bytes);
  const titleId = `drive-${d.name}`;
  const others = (d.sync?.devices ?? []).filter((o) => !o.this_device);
  const conflicts = d.sync?.conflicts ?? 0;
  return (
    <li class={`card state-${d.state}`} data-testid="drive-card" data-drive={d.name} aria-labelledby={titleId}>
      <div class="card-head">
        <h2 id={titleId}>{d.name}</h2>
        <span class={`badge badge-${d.state}`} data-testid="drive-state">
          {stateLabel(d.state)}
        </span>
      </div>
      {d.message && <p class="message">{d.message}</p>}
      {d.last_error && d.state === "error" && <p class="error">{d.last_error}</p>}
      <dl class="facts">
        <dt>Store</dt>
        <dd class="mono">{info?.store ?? d.store}</dd>
        <dt>Folder</dt>
        <dd class="mono" data-testid="drive-mount-point">
          {d.mount || info?.mount}
        </dd>
        <dt>On this device</dt>
        <dd>
          <div
            class="bar"
            role="progressbar"
            aria-label="Cache used on this device"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={pct}
          >
            <span style={{ width: `${pct}%` }} />
          </div>
          {cacheLine(d.cache_bytes, d.cache_limit_bytes)}
        </dd>
        <dt>Uploads</dt>
        <dd>
          {pendingLine(d.pending_files, d.pending_bytes)}
          {rates && <span class="rates"> · {rates}</span>}
        </dd>
        <dt>Sync</dt>
        <dd>{lastSyncLine(d.last_sync)}</dd>
        {others.length > 0 && (
          <>
            <dt>Other devices</dt>
            <dd>
              <ul class="devices" data-testid="drive-devices">
                {others.map((o) => (
                  <li key={o.id} data-testid="drive-device">
                    {deviceLine(o)}
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
        {conflicts > 0 && (
          <>
            <dt>Conflicts</dt>
            <dd data-testid="drive-conflicts">{conflictsLine(conflicts)}: see Activity</dd>
          </>
        )}
      </dl>
      <div class="buttons" aria-label={`Actions for ${d.name}`} role="group">
        {d.mounted ? (
          <>
            <button type="button" class="primary" data-testid="drive-open" disabled={busy} onClick={on.onOpen}>
              Open
            </button>
            <button type="button" data-testid="drive-unmount" disabled={busy} onClick={on.onUnmount}>
              Unmount
            </button>
          </>
        ) : (
          <button type="button" class="primary" data-testid="drive-mount" disabled={busy} onClick={on.onMount}>
            Mount
          </button>
        )}
        {d.paused ? (
          <button type="button" data-testid="drive-resume" disabled={busy} onClick={on.onResume}>
            Resume
          </button>
        ) : (
          <button type="button" data-testid="drive-pause" disabled={busy} onClick={on.onPause}>
            Pause
          </button>
        )}
        {d.locked ? (
          <button type="button" data-testid="drive-unlock" disabled={busy} onClick={on.onUnlock}>
            Unlock…
          </button>
        ) : (
          <button type="button" data-testid="drive-lock" disabled={busy} onClick={on.onLock}>
            Lock
          </button>
        )}
        <button type="button" data-testid="drive-sync" disabled={busy} onClick={on.onSync}>
          Sync now
        </button>
        <button type="button" class="danger-quiet" data-testid="drive-remove" disabled={busy} onClick={on.onRemove}>
          Remove…
        </button>
      </div>
    </li>
  );
}

function UnlockDialog({ drive, ctx, onClose }: { drive: string; ctx: Ctx; onClose: () => void }) {
  const [password, setPassword] = useState("");
  const [remember, setRemember] = useState(true);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    if (password === "") {
      setError("Give the vault's password.");
      return;
    }
    setBusy(true);
    const r = await commands.unlock(drive, password, remember);
    setBusy(false);
    if (r.status === "ok") {
      setPassword("");
      ctx.notify(r.data || `${drive} is unlocked.`);
      onClose();
      await ctx.refresh();
    } else {
      setError(
        r.error.code === "wrong_password"
          ? "This is not the vault's password. Try again, or use the recovery key with the nimbus command."
          : r.error.message,
      );
    }
  }

  return (
    <Dialog title={`Unlock ${drive}`} onClose={onClose}>
      <form onSubmit={submit}>
        <Field
          label="Vault password"
          testid="unlock-password"
          type="password"
          autocomplete="current-password"
          value={password}
          onInput={(v) => {
            setPassword(v);
            setError(undefined);
          }}
          error={error}
        />
        <Check
          label="Remember on this device"
          testid="unlock-remember"
          checked={remember}
          onChange={setRemember}
          hint="Saved in this device's keyring, so the drive unlocks by itself."
        />
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" data-testid="unlock-submit" disabled={busy}>
            {busy ? "Unlocking…" : "Unlock"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RemoveDialog({ d, ctx, onClose }: { d: DriveStatus; ctx: Ctx; onClose: () => void }) {
  const [forget, setForget] = useState(true);
  const [busy, setBusy] = useState(false);

  async function remove() {
    setBusy(true);
    const r = await commands.removeDrive(d.name, forget);
    setBusy(false);
    if (r.status === "ok") {
      ctx.notify(r.data || `${d.name} is removed from this device.`);
      onClose();
      await ctx.refresh();
    } else {
      ctx.notify(r.error.message, true);
      onClose();
    }
  }

  return (
    <Confirm
      title={`Remove ${d.name}?`}
      ok="Remove drive"
      danger
      busy={busy}
      onOk={remove}
      onCancel={onClose}
    >
      <p>
        This device stops showing the drive. Its files stay in the store ({d.store}), so you can add it again later.
      </p>
      {d.pending_files > 0 && (
        <p class="error">
          {d.pending_files} changed {d.pending_files === 1 ? "file is" : "files are"} not yet uploaded (
          {humanBytes(d.pending_bytes)}). Wait until the drive is up to date, or they may be lost.
        </p>
      )}
      <Check
        label="Also forget the saved password and keys"
        testid="remove-forget"
        checked={forget}
        onChange={setForget}
      />
    </Confirm>
  );
}

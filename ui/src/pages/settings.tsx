// The Settings page: the app's own settings, each drive's transfer limits
// and auto-lock, and where the logs are.

import { useEffect, useState } from "preact/hooks";
import type { Ctx } from "../app";
import { commands, type DriveInfo, type DriveStatus, type Settings } from "../bindings";
import { limitText, parseLimit, parseMinutes } from "../limits";
import { Check, Field } from "../ui";

export function SettingsPage(ctx: Ctx) {
  const [settings, setSettings] = useState<Settings | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    void commands.settings().then((r) => {
      if (r.status === "ok") setSettings(r.data);
      else setLoadError(r.error.message);
    });
  }, []);

  async function save(e: Event) {
    e.preventDefault();
    if (!settings) return;
    setSaving(true);
    const r = await commands.saveSettings(settings);
    setSaving(false);
    if (r.status === "ok") {
      setSettings(r.data);
      ctx.notify("Settings saved.");
    } else ctx.notify(r.error.message, true);
  }

  const service = ctx.status?.service ?? null;
  const drives = service?.drives ?? [];

  return (
    <section aria-labelledby="settings-title">
      <h1 id="settings-title" tabIndex={-1}>
        Settings
      </h1>

      <h2>Nimbus</h2>
      {loadError && <p class="error">{loadError}</p>}
      {settings && (
        <form onSubmit={save} class="panel">
          <Check
            role="switch"
            label="Start Nimbus at login"
            testid="set-autostart"
            checked={settings.start_at_login}
            onChange={(v) => setSettings({ ...settings, start_at_login: v })}
          />
          <Check
            role="switch"
            label="Notifications"
            testid="set-notifications"
            checked={settings.notifications}
            onChange={(v) => setSettings({ ...settings, notifications: v })}
            hint="Tells you about conflicts, errors and drives that lock themselves."
          />
          <div class="actions start">
            <button type="submit" class="primary" data-testid="settings-save" disabled={saving}>
              Save
            </button>
          </div>
        </form>
      )}

      <h2>Drives</h2>
      {drives.length === 0 ? (
        <p class="empty-line">No drives yet.</p>
      ) : (
        drives.map((d) => (
          <DriveSettings key={d.name} d={d} info={ctx.infos.find((i) => i.name === d.name)} ctx={ctx} />
        ))
      )}

      <h2>Logs</h2>
      <div class="panel">
        <p>
          Log folder:{" "}
          <code data-testid="log-folder">{service?.log_dir ?? "(not known yet)"}</code>
        </p>
        <button
          type="button"
          data-testid="open-log-folder"
          disabled={!service?.log_dir}
          onClick={async () => {
            const r = await commands.openLogFolder();
            if (r.status === "error") ctx.notify(r.error.message, true);
          }}
        >
          Open log folder
        </button>
      </div>
    </section>
  );
}

function DriveSettings({ d, info, ctx }: { d: DriveStatus; info: DriveInfo | undefined; ctx: Ctx }) {
  const [up, setUp] = useState(limitText(d.upload_limit));
  const [down, setDown] = useState(limitText(d.download_limit));
  const [lock, setLock] = useState(String(info?.auto_lock_minutes ?? 0));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  // The drive's settings arrive after the status; fill the field once they do.
  useEffect(() => {
    if (info) setLock(String(info.auto_lock_minutes));
  }, [info?.auto_lock_minutes]);

  async function save(e: Event) {
    e.preventDefault();
    const u = parseLimit(up);
    const dn = parseLimit(down);
    const m = parseMinutes(lock);
    const errs: Record<string, string> = {};
    if (!u.ok) errs["limit-upload"] = u.error;
    if (!dn.ok) errs["limit-download"] = dn.error;
    if (!m.ok) errs["auto-lock"] = m.error;
    setErrors(errs);
    if (!u.ok || !dn.ok || !m.ok) return;
    setBusy(true);
    try {
      const r1 = await commands.setLimits(d.name, u.value, dn.value);
      if (r1.status === "error") {
        ctx.notify(r1.error.message, true);
        return;
      }
      const r2 = await commands.changeDrive(d.name, {
        mount: null,
        cache_size_mib: null,
        commit_delay_secs: null,
        auto_lock_minutes: m.value,
        mount_at_start: null,
      });
      if (r2.status === "error") {
        ctx.notify(r2.error.message, true);
        return;
      }
      ctx.notify(`Settings of ${d.name} saved.`);
      await ctx.refresh();
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="panel limits" data-testid="limits-row" data-drive={d.name} onSubmit={save} aria-label={`Settings of ${d.name}`}>
      <h3>{d.name}</h3>
      <div class="row">
        <Field
          label="Upload limit (kB/s)"
          testid="limit-upload"
          inputMode="numeric"
          value={up}
          placeholder="No limit"
          onInput={setUp}
          error={errors["limit-upload"]}
        />
        <Field
          label="Download limit (kB/s)"
          testid="limit-download"
          inputMode="numeric"
          value={down}
          placeholder="No limit"
          onInput={setDown}
          error={errors["limit-download"]}
        />
        <Field
          label="Lock after idle (minutes)"
          testid="auto-lock"
          inputMode="numeric"
          value={lock}
          onInput={setLock}
          error={errors["auto-lock"]}
        />
      </div>
      <p class="hint">1 kB/s = 1000 bytes per second. Empty: no limit. 0 minutes: never lock by itself.</p>
      <div class="actions start">
        <button type="submit" data-testid="drive-settings-save" disabled={busy}>
          Save {d.name}
        </button>
      </div>
    </form>
  );
}

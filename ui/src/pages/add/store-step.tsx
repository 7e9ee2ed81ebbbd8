// Step 2 of the add-a-drive wizard: the store's details, by kind, and the
// connection test.

import { S3_PRESETS, changeRegion, choosePreset, preset, type Errors, type S3PresetId, type StoreForm } from "../../wizard";
import { Field, valueOf } from "../../ui";
import type { Verdict, Wizard } from "./state";

export function StoreStep({ w }: { w: Wizard }) {
  const { form: store, verdict, address, testing } = w.store;
  const fields = { store, se: w.store.errors, editStore: w.store.edit };
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void w.test();
      }}
    >
      {store.kind === "s3" && <S3Fields {...fields} />}
      {store.kind === "webdav" && <WebdavFields {...fields} />}
      {store.kind === "sftp" && <SftpFields {...fields} />}
      {store.kind === "local" && <LocalFields {...fields} />}
      {address && (
        <p class="hint">
          Store address: <code>{address}</code>
        </p>
      )}
      <div class="test-row">
        <button type="submit" data-testid="wizard-test" disabled={testing}>
          {testing ? "Testing…" : "Test connection"}
        </button>
      </div>
      <div aria-live="polite">{verdict && <TestVerdict verdict={verdict} tested={w.store.tested} />}</div>
    </form>
  );
}

/** The fields of one kind of store. */
type FieldsProps = { store: StoreForm; se: Errors; editStore: (f: StoreForm) => void };

function S3Fields({ store, se, editStore }: FieldsProps) {
  const s3 = store.s3;
  const p = preset(s3.preset);
  return (
    <>
      <div class="field">
        <label for="s3-preset">Service</label>
        <select
          id="s3-preset"
          data-testid="s3-preset"
          value={s3.preset}
          onChange={(e) => editStore({ ...store, s3: choosePreset(s3, valueOf(e) as S3PresetId) })}
        >
          {S3_PRESETS.map((x) => (
            <option key={x.id} value={x.id}>
              {x.label}
            </option>
          ))}
        </select>
      </div>
      <Field
        label="Endpoint"
        testid="s3-endpoint"
        mono
        inputMode="url"
        value={s3.endpoint}
        placeholder={s3.preset === "aws" ? "(Amazon S3)" : "http://127.0.0.1:3900"}
        hint={
          s3.preset === "aws"
            ? "Leave empty for Amazon S3."
            : s3.preset === "r2"
              ? "Replace <account-id> with your Cloudflare account ID."
              : "The service's address: http(s)://host[:port]."
        }
        onInput={(v) => editStore({ ...store, s3: { ...s3, endpoint: v } })}
        error={se["s3-endpoint"]}
      />
      <Field
        label="Region"
        testid="s3-region"
        mono
        value={s3.region}
        placeholder={p.regionHint}
        hint="Optional for most services."
        onInput={(v) => editStore({ ...store, s3: changeRegion(s3, v) })}
        error={se["s3-region"]}
      />
      <Field
        label="Bucket"
        testid="s3-bucket"
        mono
        value={s3.bucket}
        onInput={(v) => editStore({ ...store, s3: { ...s3, bucket: v } })}
        error={se["s3-bucket"]}
      />
      <Field
        label="Folder in the bucket (optional)"
        testid="s3-prefix"
        mono
        value={s3.prefix}
        placeholder="nimbus/laptop"
        onInput={(v) => editStore({ ...store, s3: { ...s3, prefix: v } })}
        error={se["s3-prefix"]}
      />
      <Field
        label="Access key ID"
        testid="s3-access-key"
        mono
        value={s3.accessKey}
        onInput={(v) => editStore({ ...store, s3: { ...s3, accessKey: v } })}
        error={se["s3-access-key"]}
      />
      <Field
        label="Secret access key"
        testid="s3-secret-key"
        type="password"
        value={s3.secretKey}
        hint="The keys are saved to this device's keyring, never in the store address."
        onInput={(v) => editStore({ ...store, s3: { ...s3, secretKey: v } })}
        error={se["s3-secret-key"]}
      />
    </>
  );
}

function WebdavFields({ store, se, editStore }: FieldsProps) {
  return (
    <>
      <Field
        label="Folder address"
        testid="webdav-url"
        mono
        inputMode="url"
        value={store.webdav.url}
        placeholder="https://cloud.example.com/remote.php/dav/files/ann/Nimbus"
        onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, url: v } })}
        error={se["webdav-url"]}
      />
      <Field
        label="User name"
        testid="webdav-user"
        autocomplete="username"
        value={store.webdav.user}
        onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, user: v } })}
        error={se["webdav-user"]}
      />
      <Field
        label="Password"
        testid="webdav-password"
        type="password"
        value={store.webdav.password}
        hint="Saved to this device's keyring, never in the store address. Nextcloud: use an app password."
        onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, password: v } })}
        error={se["webdav-password"]}
      />
    </>
  );
}

function SftpFields({ store, se, editStore }: FieldsProps) {
  return (
    <>
      <div class="row">
        <Field
          label="Server"
          testid="sftp-host"
          mono
          value={store.sftp.host}
          placeholder="nas.local"
          onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, host: v } })}
          error={se["sftp-host"]}
        />
        <Field
          label="Port"
          testid="sftp-port"
          inputMode="numeric"
          value={store.sftp.port}
          onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, port: v } })}
          error={se["sftp-port"]}
        />
      </div>
      <Field
        label="User name"
        testid="sftp-user"
        autocomplete="username"
        value={store.sftp.user}
        hint="Empty: the user of ~/.ssh/config, or yours on this device."
        onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, user: v } })}
        error={se["sftp-user"]}
      />
      <Field
        label="Folder on the server"
        testid="sftp-path"
        mono
        value={store.sftp.path}
        placeholder="/srv/nimbus or ~/nimbus"
        onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, path: v } })}
        error={se["sftp-path"]}
      />
      <Field
        label="Password (optional)"
        testid="sftp-password"
        type="password"
        value={store.sftp.password}
        hint="Leave empty to use your SSH keys or agent. A password is saved to this device's keyring."
        onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, password: v } })}
        error={se["sftp-password"]}
      />
    </>
  );
}

function LocalFields({ store, se, editStore }: FieldsProps) {
  return (
    <Field
      label="Folder"
      testid="local-path"
      mono
      value={store.local.path}
      placeholder="/srv/vault or ~/Vault"
      hint="Any folder: on this disk, a USB disk or a mounted network share."
      onInput={(v) => editStore({ ...store, local: { path: v } })}
      error={se["local-path"]}
    />
  );
}

/** What the connection test found, and what to do about a failure. */
function TestVerdict({ verdict, tested }: { verdict: Verdict; tested: boolean }) {
  return (
    <div
      class={verdict.ok ? "verdict ok" : "verdict bad"}
      data-testid="wizard-verdict"
      data-ok={verdict.ok ? "true" : "false"}
    >
      <p>
        <span aria-hidden="true">{verdict.ok ? "✓ " : "✕ "}</span>
        {verdict.text}
      </p>
      {verdict.ok
        ? verdict.detail && verdict.detail !== verdict.text && <p class="hint">{verdict.detail}</p>
        : <p>What to do: {verdict.advice}</p>}
      {verdict.ok && !tested && <p class="hint">The details changed since the test: test again.</p>}
    </div>
  );
}

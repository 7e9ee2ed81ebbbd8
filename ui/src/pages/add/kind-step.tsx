// Step 1 of the add-a-drive wizard: the kind of store.

import type { Kind } from "../../wizard";
import type { Wizard } from "./state";

const KINDS: { kind: Kind; title: string; text: string }[] = [
  { kind: "s3", title: "S3-compatible storage", text: "Amazon S3, Backblaze B2, Cloudflare R2, Wasabi, MinIO, Garage…" },
  { kind: "webdav", title: "WebDAV", text: "Nextcloud, ownCloud, a NAS or any WebDAV server." },
  { kind: "sftp", title: "SFTP (SSH)", text: "A folder on a machine you reach with SSH." },
  { kind: "local", title: "A folder", text: "A folder on this computer, a USB disk or a network share." },
];

export function KindStep({ w }: { w: Wizard }) {
  return (
    <fieldset class="kinds">
      <legend class="sr-only">Kind of store</legend>
      {KINDS.map((k) => (
        <label key={k.kind} class={w.store.form.kind === k.kind ? "kind selected" : "kind"}>
          <input
            type="radio"
            name="kind"
            value={k.kind}
            data-testid={`kind-${k.kind}`}
            checked={w.store.form.kind === k.kind}
            onChange={() => w.store.chooseKind(k.kind)}
          />
          <span class="kind-title">{k.title}</span>
          <span class="kind-text">{k.text}</span>
        </label>
      ))}
    </fieldset>
  );
}

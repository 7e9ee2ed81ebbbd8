// Step 4 of the add-a-drive wizard: the drive on this device (its name,
// folder, cache, offline folders, and whether the password is remembered).

import { Check, Field } from "../../ui";
import type { Wizard } from "./state";

export function DriveStep({ w }: { w: Wizard }) {
  const drive = w.drive.fields;
  const de = w.drive.errors;
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void w.finish();
      }}
    >
      <Field
        label="Drive name"
        testid="drive-name"
        value={drive.name}
        hint="Letters, digits, -, _ and ."
        onInput={w.drive.editName}
        error={de["drive-name"]}
      />
      <Field
        label="Folder on this device"
        testid="mount-point"
        mono
        value={drive.mount}
        hint="Where the drive's files appear. Nimbus creates the folder if needed."
        onInput={w.drive.editMount}
        error={de["mount-point"]}
      />
      <Field
        label="Space on this device (MiB)"
        testid="cache-size"
        inputMode="numeric"
        value={drive.cacheSize}
        hint="Files you used lately are kept here, so they open without the network. 1024 MiB = 1 GiB."
        onInput={(v) => w.drive.edit({ ...drive, cacheSize: v })}
        error={de["cache-size"]}
      />
      <Field
        label="Keep offline (optional)"
        testid="offline-paths"
        multiline
        mono
        value={drive.offline}
        placeholder={"Documents\nPhotos/2024"}
        hint="Folders of the drive always kept on this device, one per line."
        onInput={(v) => w.drive.edit({ ...drive, offline: v })}
        error={de["offline-paths"]}
      />
      <Check
        label="Remember the password on this device"
        testid="remember-password"
        checked={w.drive.remember}
        onChange={w.drive.setRemember}
        hint="Saved in this device's keyring, so the drive mounts without asking."
      />
      <button type="submit" class="sr-only" tabIndex={-1} aria-hidden="true">
        Finish
      </button>
    </form>
  );
}

#!/usr/bin/python3
"""The app's tray menu, over D-Bus, as a tray would read and click it.

    /usr/bin/python3 tests/app/tray.py --expect "Up to date" --pause
    /usr/bin/python3 tests/app/tray.py --pid 1234 --click Quit

Finds the app's StatusNotifierItem through org.kde.StatusNotifierWatcher,
reads its dbusmenu (com.canonical.dbusmenu.GetLayout), prints the labels and
checks that the first one, the status line, is the expected text. With
--pause it then clicks "Pause" (a dbusmenu "clicked" event), waits until
`nimbus status --json` says every drive is paused, checks the menu now
offers "Resume" and its status line starts with "Paused", and clicks
"Resume" to leave things as they were (every drive unpaused).

With --click LABEL it only clicks that item (after checking the status line,
if --expect is given too). With --pid PID it takes only the item of the app
with that process id (a stale item of an app that was killed may still be
registered).

Needs the session bus of the app (DBUS_SESSION_BUS_ADDRESS) and python3-dbus
(Debian's /usr/bin/python3). The CLI is $NIMBUS_BIN (default: nimbus).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import xml.etree.ElementTree as ET

import dbus

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM_IFACE = "org.kde.StatusNotifierItem"
MENU_IFACE = "com.canonical.dbusmenu"
PROPS = "org.freedesktop.DBus.Properties"
NIMBUS = os.environ.get("NIMBUS_BIN", "nimbus")


class Failure(Exception):
    pass


def say(msg):
    print(f"tray.py: {msg}", flush=True)


def status():
    r = subprocess.run([NIMBUS, "status", "--json"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise Failure(f"nimbus status --json failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def wait(what, seconds, fn):
    end = time.monotonic() + seconds
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > end:
            raise Failure(f"{what}: not within {seconds} s")
        time.sleep(0.1)


def item_paths(bus, name, path="/"):
    """Object paths under PATH of NAME that implement the item interface."""
    xml = bus.get_object(name, path).Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
    root = ET.fromstring(str(xml))
    found = [path] if any(i.get("name") == ITEM_IFACE for i in root.findall("interface")) else []
    for node in root.findall("node"):
        child = node.get("name")
        if child:
            found += item_paths(bus, name, path.rstrip("/") + "/" + child)
    return found


def items(bus):
    """The registered items as (bus name, object path) pairs."""
    watcher = bus.get_object(WATCHER, "/StatusNotifierWatcher")
    regs = watcher.Get(WATCHER, "RegisteredStatusNotifierItems", dbus_interface=PROPS)
    out = []
    for r in regs:
        r = str(r)
        # ":1.42/org/ayatana/NotificationItem/nimbus", or just a bus name:
        # Debian's status-notifier-watcher keeps only the name, and
        # libayatana-appindicator's item is not at the standard
        # /StatusNotifierItem, so the path is found by introspection.
        if "/" in r:
            i = r.index("/")
            out.append((r[:i], r[i:]))
        else:
            out += [(r, p) for p in item_paths(bus, r)] or [(r, "/StatusNotifierItem")]
    return out


def owner_pid(bus, name):
    dbus_obj = bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
    return int(dbus_obj.GetConnectionUnixProcessID(name, dbus_interface="org.freedesktop.DBus"))


def find_item(bus, pid=None):
    """The app's item: the one whose Id or Title says Nimbus, else the only
    one; with PID, only an item whose bus name belongs to that process."""
    found = items(bus)
    if pid is not None:
        mine = []
        for name, path in found:
            try:
                if owner_pid(bus, name) == pid:
                    mine.append((name, path))
            except dbus.DBusException:
                pass  # its owner is gone: a stale registration
        found = mine
    if not found:
        return None
    described = []
    for name, path in found:
        try:
            obj = bus.get_object(name, path)
            props = obj.GetAll(ITEM_IFACE, dbus_interface=PROPS)
        except dbus.DBusException as e:
            described.append(f"{name}{path} (unreadable: {e.get_dbus_message()})")
            continue
        ident, title = str(props.get("Id", "")), str(props.get("Title", ""))
        described.append(f"{name}{path} Id={ident!r} Title={title!r}")
        if "nimbus" in (ident + title).lower() or len(found) == 1:
            return name, path, props
    raise Failure("no StatusNotifierItem of Nimbus among: " + "; ".join(described))


def flatten(layout, out):
    """(id, properties) of every menu item, depth first."""
    ident, props, children = layout
    out.append((int(ident), {str(k): v for k, v in props.items()}))
    for c in children:
        flatten(c, out)
    return out


def labels(menu):
    _rev, layout = menu.GetLayout(0, -1, dbus.Array([], signature="s"), dbus_interface=MENU_IFACE)
    entries = []
    for ident, props in flatten(layout, [])[1:]:  # [0] is the root
        if str(props.get("type", "standard")) == "separator":
            continue
        if not bool(props.get("visible", True)):
            continue
        label = str(props.get("label", "")).replace("_", "")
        entries.append((ident, label, bool(props.get("enabled", True))))
    return entries


def show(entries):
    for ident, label, enabled in entries:
        say(f"  [{ident}] {label}{'' if enabled else '  (disabled)'}")


def click(menu, entries, label):
    ids = [i for i, l, _ in entries if l == label]
    if not ids:
        raise Failure(f'no menu item "{label}" (labels: {[l for _, l, _ in entries]})')
    menu.Event(dbus.Int32(ids[0]), "clicked", dbus.Int32(0, variant_level=1), dbus.UInt32(0),
               dbus_interface=MENU_IFACE)
    say(f'clicked "{label}" (item {ids[0]})')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--expect", help='the status line the menu must show, e.g. "Up to date"')
    ap.add_argument("--click", help='only click this item (e.g. "Quit"), then exit')
    ap.add_argument("--pause", action="store_true",
                    help="then click Pause, check every drive is paused, and Resume")
    ap.add_argument("--pid", type=int, help="the app's process id: read only its item")
    ap.add_argument("--timeout", type=float, default=30, help="seconds for each wait")
    a = ap.parse_args()
    if not a.expect and not a.click:
        ap.error("give --expect, --click or both")

    bus = dbus.SessionBus()
    whose = f"the app (pid {a.pid})" if a.pid else "the app"
    name, path, props = wait(f"{whose} registered no StatusNotifierItem with the watcher", a.timeout,
                             lambda: find_item(bus, a.pid))
    menu_path = str(props.get("Menu", ""))
    if not menu_path or menu_path == "/":
        raise Failure(f"the item {name}{path} has no Menu property")
    say(f"item {name}{path} (Id {str(props.get('Id', ''))!r}), menu {menu_path}")
    menu = bus.get_object(name, menu_path)

    entries = labels(menu)
    show(entries)
    if not entries:
        raise Failure("the tray menu is empty")
    if not a.expect:
        click(menu, entries, a.click)
        return
    first = entries[0][1]
    drives = status()["drives"]
    say(f"nimbus status: {', '.join(d['name'] + ' ' + d['state'] for d in drives) or 'no drives'}")
    # The menu's line is updated on the service's events: give it a moment.
    if first != a.expect:
        wait(f'the status line is "{first}", not "{a.expect}"', a.timeout,
             lambda: labels(menu)[0][1] == a.expect)
        entries = labels(menu)
    if entries[0][2]:
        raise Failure(f'the status line "{entries[0][1]}" is a clickable item; it should be disabled')
    if a.click:
        click(menu, entries, a.click)
        return
    if not a.pause:
        return
    if not drives:
        say("no drives: nothing to pause")
        return

    click(menu, entries, "Pause")
    wait("nimbus status does not say every drive is paused after the tray's Pause", a.timeout,
         lambda: all(d.get("paused") for d in status()["drives"]))
    say("every drive paused (nimbus status)")
    wait('the tray menu does not offer "Resume" and say "Paused…" after Pause', a.timeout,
         lambda: (lambda e: any(l == "Resume" for _, l, _ in e) and e[0][1].startswith("Paused"))(labels(menu)))
    entries = labels(menu)
    show(entries)
    click(menu, entries, "Resume")
    wait("a drive is still paused after the tray's Resume", a.timeout,
         lambda: not any(d.get("paused") for d in status()["drives"]))
    wait('the tray menu does not offer "Pause" again after Resume', a.timeout,
         lambda: any(l == "Pause" for _, l, _ in labels(menu)))
    say("resumed; the menu offers Pause again")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAILED (tray): {e}", file=sys.stderr)
        sys.exit(1)
    except dbus.DBusException as e:
        print(f"FAILED (tray): D-Bus error {e.get_dbus_name()}: {e.get_dbus_message()}", file=sys.stderr)
        sys.exit(1)

//! Key slots edited by a hostile store, as the review's `cfgtool.py` did
//! (`prepend-garbage-slot`: a slot that opens with nothing, at a cost the
//! store chooses, and the checksum recomputed): the vault refuses to open
//! and `passwd` refuses to run, instead of copying the store's cost.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use nimbus_vault::config::{Config, KdfAlgorithm, KdfParams, KeySlot, SlotKind};

fn prepend_garbage_slot(env: &Env, memory_kib: u32, iterations: u32) {
    let path = env.store.join("config");
    let mut cfg = Config::decode(&std::fs::read(&path).unwrap()).unwrap();
    cfg.file.key_slots.insert(
        0,
        KeySlot {
            kind: SlotKind::Password,
            kdf: Some(KdfParams {
                algorithm: KdfAlgorithm::Argon2id,
                memory_kib,
                iterations,
                parallelism: 1,
            }),
            salt: hex::encode([0x11u8; 16]),
            wrapped_key: hex::encode([0x22u8; 60]),
            key_check: Some(hex::encode([0x33u8; 32])),
        },
    );
    // `encode` recomputes the unkeyed checksum, as the store can.
    std::fs::write(&path, cfg.encode()).unwrap();
}

fn password_slot_cost(env: &Env) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(env.store.join("config")).unwrap()).unwrap();
    let kdf = &v["key_slots"][0]["kdf"];
    (kdf["memory_kib"].as_u64().unwrap(), kdf["iterations"].as_u64().unwrap())
}

fn setup() -> Env {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "hello").unwrap();
    env.ok(&["put", src.to_str().unwrap(), "/d"]);
    env
}

/// M1 as the review ran it: `prepend-garbage-slot config 8 1 1`, then
/// `passwd` wrote the new password at 8 KiB and one pass.
#[test]
fn store_injected_cheap_slot_is_refused() {
    let env = setup();
    prepend_garbage_slot(&env, 8, 1);
    let config = std::fs::read(env.store.join("config")).unwrap();
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("`config`") && text(&out).contains("below the minimum"),
        "{}",
        text(&out)
    );
    let out = env
        .cmd()
        .env("NIMBUS_NEW_PASSWORD", "new password")
        .arg("passwd")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(env.store.join("config")).unwrap(), config);
}

/// The same at the cost floor: well formed, but not a slot this vault's key
/// made, so opening stops (the store learns nothing from which slot did).
#[test]
fn store_injected_slot_at_the_floor_is_refused() {
    let env = setup();
    prepend_garbage_slot(&env, 19 << 10, 2);
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("key slots were altered"), "{}", text(&out));
    let out = env
        .cmd()
        .env("NIMBUS_NEW_PASSWORD", "new password")
        .arg("passwd")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
}

/// `passwd` never lowers the cost: a vault made at the floor gets the
/// default cost with its new password.
#[test]
fn passwd_raises_a_low_cost_to_the_default() {
    let env = setup();
    assert_eq!(password_slot_cost(&env), (19 << 10, 2));
    env.cmd()
        .env("NIMBUS_NEW_PASSWORD", "new password")
        .arg("passwd")
        .output()
        .map(|o| assert!(o.status.success(), "{}", text(&o)))
        .unwrap();
    assert_eq!(password_slot_cost(&env), (64 << 10, 3));
    let out = env
        .cmd()
        .env("NIMBUS_PASSWORD", "new password")
        .arg("ls")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `init` below the floor is refused with the settings to use, before a
/// password is asked for.
#[test]
fn init_below_the_floor_is_refused() {
    let env = Env::new();
    let store = env.store.to_str().unwrap().to_string();
    let out = env.run(&["init", &store, "--kdf-memory-kib", "8", "--kdf-iterations", "1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--kdf-memory-kib 19456"), "{}", text(&out));
    assert!(!env.store.join("config").exists());
}

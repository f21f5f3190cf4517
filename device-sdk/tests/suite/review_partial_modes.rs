//! Review of the slot's temporary file and the atomic writes (commit 838c519, second engineer):
//! a local attacker's leftovers at `<slot>.partial` or at the slot (a symlink out of the
//! directory, a dangling one, a world-readable file, a directory), the state files
//! (`boot.json`, `state.json`, `reports.json`) left world-readable or replaced by a symlink, and
//! a writer panicking before its first byte and after its last.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use alloy_primitives::B256;
use otaledger_device_sdk::client::{
    BootState, FileInstaller, FileStorage, Installer, ReportQueue, Slot, Storage,
};
use sha2::Digest;

fn sha(bytes: &[u8]) -> B256 {
    B256::from(<[u8; 32]>::from(sha2::Sha256::digest(bytes)))
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn partial(p: &Path) -> std::path::PathBuf {
    let mut name = p.file_name().unwrap().to_os_string();
    name.push(".partial");
    p.with_file_name(name)
}

/// Writes `bytes` into the inactive slot (B on a fresh installer), recording the temporary
/// file's mode and inode while it is written.
fn write_slot(i: &mut FileInstaller, bytes: &[u8]) -> (u32, u64) {
    let tmp = partial(&i.slot_path(Slot::B));
    let mut seen = None;
    i.write_inactive(1, B256::repeat_byte(1), sha(bytes), &mut |out| {
        out.write_all(bytes).unwrap();
        out.flush().unwrap();
        let m = std::fs::symlink_metadata(&tmp).unwrap();
        assert!(m.file_type().is_file(), "the partial is not a regular file");
        seen = Some((m.permissions().mode() & 0o777, m.ino()));
        Ok(bytes.len() as u64)
    })
    .unwrap();
    seen.unwrap()
}

/// The slot after a write: a regular file, owner-only, holding `bytes`; no temporary file.
fn assert_slot(i: &FileInstaller, bytes: &[u8]) {
    let slot = i.slot_path(Slot::B);
    let m = std::fs::symlink_metadata(&slot).unwrap();
    assert!(m.file_type().is_file(), "the slot is not a regular file");
    assert_eq!(mode(&slot), 0o600);
    assert_eq!(std::fs::read(&slot).unwrap(), bytes);
    assert!(!partial(&slot).exists(), "the partial was left");
}

/// A symlink planted at `<slot>.partial`, to a file of the attacker's choosing outside the
/// directory: removed, never followed; the victim keeps its bytes and mode.
#[test]
fn review_a_symlink_planted_as_the_partial_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut i = FileInstaller::new(dir.path()).unwrap();
    symlink(&victim, partial(&i.slot_path(Slot::B))).unwrap();
    let (m, _) = write_slot(&mut i, b"firmware plaintext");
    assert_eq!(m, 0o600);
    assert_slot(&i, b"firmware plaintext");
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    assert_eq!(mode(&victim), 0o644);
}

/// A dangling symlink at `<slot>.partial` (to a name in a directory the attacker reads): no
/// file is created through it.
#[test]
fn review_a_dangling_symlink_as_the_partial_creates_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("copy-of-the-firmware");
    let mut i = FileInstaller::new(dir.path()).unwrap();
    symlink(&target, partial(&i.slot_path(Slot::B))).unwrap();
    write_slot(&mut i, b"firmware plaintext");
    assert_slot(&i, b"firmware plaintext");
    assert!(!target.exists(), "a file was created through the symlink");
}

/// A symlink planted as the slot itself: the rename replaces the link, the victim is untouched.
#[test]
fn review_a_symlink_planted_as_the_slot_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let mut i = FileInstaller::new(dir.path()).unwrap();
    symlink(&victim, i.slot_path(Slot::B)).unwrap();
    write_slot(&mut i, b"firmware plaintext");
    assert_slot(&i, b"firmware plaintext");
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
}

/// A world-readable `<slot>.partial` and slot left behind (by an older SDK, or planted): the
/// write does not reuse the old inode (an attacker holding it open reads nothing new), the
/// temporary file is 0600 while written and the slot 0600 once renamed.
#[test]
fn review_world_readable_leftovers_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = FileInstaller::new(dir.path()).unwrap();
    let slot = i.slot_path(Slot::B);
    for p in [&slot, &partial(&slot)] {
        std::fs::write(p, b"old bytes, longer than the new ones").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let old_partial = std::fs::metadata(partial(&slot)).unwrap().ino();
    // Held open for reading, as another user would while the file was world-readable.
    let held = std::fs::File::open(partial(&slot)).unwrap();
    let (m, ino) = write_slot(&mut i, b"new");
    assert_eq!(m, 0o600);
    assert_ne!(ino, old_partial, "the old world-readable inode was reused");
    assert_slot(&i, b"new");
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut &held, &mut seen).unwrap();
    assert_eq!(seen, b"old bytes, longer than the new ones");
}

/// A directory planted at `<slot>.partial`: the write fails with an error (no panic, nothing
/// written, the slot untouched, no install pending).
#[test]
fn review_a_directory_planted_as_the_partial_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = FileInstaller::new(dir.path()).unwrap();
    let slot = i.slot_path(Slot::B);
    std::fs::create_dir(partial(&slot)).unwrap();
    std::fs::write(partial(&slot).join("inside"), b"x").unwrap();
    let mut called = false;
    let err = i
        .write_inactive(1, B256::ZERO, sha(b"v1"), &mut |out| {
            called = true;
            out.write_all(b"v1").unwrap();
            Ok(2)
        })
        .unwrap_err();
    assert!(
        matches!(err, otaledger_device_sdk::Error::InstallIo { .. }),
        "{err:?}"
    );
    assert!(!called);
    assert!(!slot.exists());
    assert_eq!(i.state().unwrap(), BootState::default());
}

/// A writer panicking before its first byte and after its last (before returning): nothing
/// left, neither the temporary file nor the slot, the boot state unchanged; a next write works.
#[test]
fn review_a_panic_before_the_first_byte_or_after_the_last_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = FileInstaller::new(dir.path()).unwrap();
    let slot = i.slot_path(Slot::B);
    for at_end in [false, true] {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = i.write_inactive(1, B256::ZERO, sha(b"v1"), &mut |out| {
                if at_end {
                    out.write_all(&[7; 600_000]).unwrap();
                    out.flush().unwrap();
                }
                panic!("the writer died (at_end: {at_end})");
            });
        }));
        assert!(panicked.is_err());
        assert!(
            !partial(&slot).exists(),
            "left after a panic (at_end: {at_end})"
        );
        assert!(!slot.exists());
        assert_eq!(i.state().unwrap(), BootState::default());
    }
    write_slot(&mut i, b"v1");
    assert_slot(&i, b"v1");
}

/// `boot.json`, `state.json` and `reports.json` left world-readable (an older SDK) or replaced
/// by a symlink: the next write leaves each a regular owner-only file, the symlink's target
/// untouched.
#[test]
fn review_state_files_end_owner_only_and_never_write_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let check = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        assert!(
            m.file_type().is_file(),
            "{} is not a regular file",
            p.display()
        );
        assert_eq!(mode(p), 0o600, "{}", p.display());
    };

    // boot.json: written by the slot write, then left 0644, then a symlink.
    let slots = dir.path().join("slots");
    let mut i = FileInstaller::new(&slots).unwrap();
    write_slot(&mut i, b"v1");
    let boot = slots.join("boot.json");
    check(&boot);
    std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o644)).unwrap();
    i.mark_pending().unwrap();
    check(&boot);
    let kept = std::fs::read(&boot).unwrap();
    std::fs::remove_file(&boot).unwrap();
    std::fs::write(outside.path().join("boot.json"), &kept).unwrap();
    symlink(outside.path().join("boot.json"), &boot).unwrap();
    i.switch().unwrap();
    check(&boot);
    assert_eq!(
        std::fs::read(outside.path().join("boot.json")).unwrap(),
        kept,
        "boot.json written through a symlink"
    );

    // state.json.
    let state = dir.path().join("state.json");
    let storage = FileStorage::new(&state);
    storage.store(&Default::default()).unwrap();
    check(&state);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    storage.store(&Default::default()).unwrap();
    check(&state);
    std::fs::remove_file(&state).unwrap();
    symlink(&victim, &state).unwrap();
    storage.store(&Default::default()).unwrap();
    check(&state);
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");

    // reports.json.
    let reports = dir.path().join("reports.json");
    symlink(&victim, &reports).unwrap();
    let queue = ReportQueue::new(&reports);
    let key = alloy::signers::local::PrivateKeySigner::random();
    let push = |n: u64| {
        queue
            .push(
                &key,
                31337,
                alloy_primitives::Address::repeat_byte(1),
                7,
                B256::repeat_byte(2),
                n,
                otaledger_core::report::Outcome::Installed,
                "",
                10,
                1_700_000_000,
            )
            .unwrap()
    };
    // The symlink's target is read as the queue (not JSON): refused or replaced, never
    // written through.
    if queue.queued().is_ok() {
        push(1);
        check(&reports);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    std::fs::remove_file(&reports).unwrap();
    push(2);
    check(&reports);
    std::fs::set_permissions(&reports, std::fs::Permissions::from_mode(0o644)).unwrap();
    push(3);
    check(&reports);
}

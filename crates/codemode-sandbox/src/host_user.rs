//! The host user a run becomes when codemode runs as root, in either
//! backend.
//!
//! Not a fixed one such as `nobody`: any other process with the script's
//! host uid can read its `/proc/<pid>/environ`, bridge token included (the
//! native script stays dumpable, as its setup needs that to write its uid
//! map, and as owner of its user namespace could even be ptraced; a Docker
//! container's uid is the same host uid unless the engine remaps users).
//! Daemons often run as `nobody`, and two runs would share it too. So each
//! run gets a uid (and the gid of the same number) that no account has and
//! no other run of this process holds.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use nix::unistd::{Gid, Group, Uid, User};

use crate::HostUser;

/// The range systemd documents as never allocated (neither to system or
/// regular users nor to its dynamic users or containers); 2^28 ids, so that
/// two codemode processes picking at random practically never meet.
pub const UNUSED_IDS: RangeInclusive<u32> = 1_879_048_192..=2_147_483_647;

/// A collision with an account is already unlikely; a few tries make a
/// failure mean something is wrong with the lookups, not bad luck.
const TRIES: usize = 8;

/// Ids handed to runs of this process that are still under way.
static HELD: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Keeps a picked id from other runs of this process until dropped, which
/// must be after the run and its files are gone.
#[derive(Debug)]
pub struct Lease(u32);

impl Drop for Lease {
    fn drop(&mut self) {
        held().remove(&self.0);
    }
}

fn held() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    // The set stays consistent whatever panicked while holding it.
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A random uid/gid from [`UNUSED_IDS`] with no passwd or group entry and
/// held by no other run of this process.
pub fn lease() -> Result<(HostUser, Lease), String> {
    let span = UNUSED_IDS.end() - UNUSED_IDS.start() + 1;
    let mut why = String::new();
    for _ in 0..TRIES {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|e| format!("no randomness for a host uid: {e}"))?;
        let id = UNUSED_IDS.start() + u32::from_ne_bytes(random) % span;
        match has_account(id) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                why = format!(": looking up uid {id}: {e}");
                continue;
            }
        }
        // One step that both checks and takes it: two runs starting at once
        // cannot both get it.
        if held().insert(id) {
            return Ok((HostUser { uid: id, gid: id }, Lease(id)));
        }
    }
    Err(format!(
        "found no unused host uid in {}-{} after {TRIES} tries{why}",
        UNUSED_IDS.start(),
        UNUSED_IDS.end()
    ))
}

/// Whether every id of [`UNUSED_IDS`] exists in this user namespace, as uid
/// and as gid. Root inside a container's own user namespace (LXD, rootless
/// engines) often has only 65,536 ids mapped, and an unmapped id can neither
/// own the workspace nor be switched to.
pub fn range_is_mapped() -> bool {
    ["/proc/self/uid_map", "/proc/self/gid_map"]
        .iter()
        .all(|map| std::fs::read_to_string(map).is_ok_and(|text| covers(&text, &UNUSED_IDS)))
}

/// Whether one extent of an id map (`inside outside count` lines) holds all
/// of `ids` on its inside.
fn covers(map: &str, ids: &RangeInclusive<u32>) -> bool {
    map.lines().any(|line| {
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        matches!(fields[..], [inside, _, count]
            if inside <= u64::from(*ids.start()) && u64::from(*ids.end()) < inside + count)
    })
}

/// Whether a user or group (as the host's NSS sees them: files, LDAP, ...)
/// already has `id`.
fn has_account(id: u32) -> nix::Result<bool> {
    Ok(User::from_uid(Uid::from_raw(id))?.is_some()
        || Group::from_gid(Gid::from_raw(id))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_mapped_only_where_one_extent_holds_it_all() {
        assert!(covers("         0          0 4294967295\n", &UNUSED_IDS));
        assert!(!covers("         0     100000      65536\n", &UNUSED_IDS));
        assert!(!covers(
            "0 0 1879048192\n1879048192 1879048192 100\n",
            &UNUSED_IDS
        ));
        assert!(!covers("", &UNUSED_IDS));
    }

    #[test]
    fn a_leased_id_is_unused_and_not_leased_twice() {
        let (first, first_lease) = lease().unwrap();
        assert!(UNUSED_IDS.contains(&first.uid) && first.gid == first.uid);
        assert!(!has_account(first.uid).unwrap());
        assert!(held().contains(&first.uid));
        let (second, _second_lease) = lease().unwrap();
        assert_ne!(first, second);
        drop(first_lease);
        assert!(!held().contains(&first.uid));
    }
}

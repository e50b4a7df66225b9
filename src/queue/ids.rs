//! Job ids: UUIDv8 laid out like v7 (48 bits of unix ms first, so ids still sort by creation
//! time), with the 12-bit shard of the job's queue in the 12 bits after the version nibble and
//! random bits after. `GET /jobs/{id}` finds the record's shard from the id alone. Ids from
//! before (v7, or anything else) name the legacy shard.

use rand::RngCore;

/// A new job id for a job whose queue is in shard `shard` (see [`super::keys::shard_number`]).
pub fn new_job_id(shard: u16) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    id_at(millis, shard, rand::rng().next_u64()).to_string()
}

/// The id for `millis`, `shard` and `random` bits (builder set apart for tests).
fn id_at(millis: u64, shard: u16, random: u64) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    let shard = shard & 0x0fff;
    bytes[6] = (shard >> 8) as u8;
    bytes[7] = (shard & 0xff) as u8;
    bytes[8..].copy_from_slice(&random.to_be_bytes());
    // Sets the version nibble (8) and the RFC 4122 variant bits, leaving the rest as given.
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The shard a job id names: `Some` for a UUIDv8 made by [`new_job_id`], `None` otherwise
/// (a legacy id).
pub fn shard_of(id: &str) -> Option<u16> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    if uuid.get_version_num() != 8 {
        return None;
    }
    let b = uuid.as_bytes();
    Some((u16::from(b[6] & 0x0f) << 8) | u16::from(b[7]))
}

/// The ms since the epoch an id carries in its first 48 bits (any UUID's first 12 hex digits),
/// as `id_ms` in `scripts/prelude.lua` reads it; `None` when they are not hex.
pub fn millis_of(id: &str) -> Option<i64> {
    let head = id.get(..13).filter(|h| h.as_bytes()[8] == b'-')?;
    let hex = [&head[..8], &head[9..]].concat();
    // from_str_radix would take a sign too.
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_carries_its_shard_and_sorts_by_time() {
        for shard in [0, 1, 0x7ff, 0xfff] {
            let id = new_job_id(shard);
            assert_eq!(shard_of(&id), Some(shard), "{id}");
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 8);
        }
        let early = id_at(1_700_000_000_000, 0xfff, u64::MAX).to_string();
        let later = id_at(1_700_000_000_001, 0, 0).to_string();
        assert!(early < later, "{early} {later}");
        assert!(early.starts_with("018bcfe5-6800-8fff-"), "{early}");
    }

    #[test]
    fn an_id_carries_the_ms_it_was_made_at() {
        let id = id_at(1_700_000_000_123, 0xabc, 42).to_string();
        assert_eq!(millis_of(&id), Some(1_700_000_000_123));
        assert_eq!(
            millis_of("018bcfe5-6800-8fff-ffff-ffffffffffff"),
            Some(0x018b_cfe5_6800)
        );
        assert_eq!(millis_of("nope"), None);
        assert_eq!(millis_of("018bcfe5x6800-8fff"), None);
        assert_eq!(millis_of("+18bcfe5-6800-8fff"), None);
    }

    #[test]
    fn other_ids_name_no_shard() {
        assert_eq!(shard_of(&uuid::Uuid::now_v7().to_string()), None);
        assert_eq!(shard_of("6f1c0a2e-3b4d-4c5e-8f60-718293a4b5c6"), None);
        assert_eq!(shard_of("nope"), None);
    }
}

//! The Sort Benchmark's 100-byte record: a 10-byte key and a 90-byte payload.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of one record in bytes.
pub const RECORD_LEN: usize = 100;
/// Length of the key at the start of each record.
pub const KEY_LEN: usize = 10;

/// The bits below a [`packed_key`]: room for an index (48 bits), which breaks ties.
pub const INDEX_MASK: u128 = (1 << 48) - 1;

/// `key` in the top 80 bits of a `u128` and `index` (below 2^48) in the rest: integers that
/// order as the keys do, ties by index, so sorts and merges compare integers, never bytes.
#[inline]
pub fn packed_key(key: &[u8; KEY_LEN], index: u128) -> u128 {
    let mut wide = [0u8; 16];
    wide[..KEY_LEN].copy_from_slice(key);
    u128::from_be_bytes(wide) | (index & INDEX_MASK)
}

/// One gensort record. `#[repr(transparent)]` so a `Vec<Record>` is one contiguous byte
/// buffer that reads and writes (and converts to Arrow) without per-record work.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Record(pub [u8; RECORD_LEN]);

impl Record {
    /// The 10-byte key, compared in unsigned byte order.
    #[inline]
    pub fn key(&self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&self.0[..KEY_LEN]);
        key
    }

    /// The record's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; RECORD_LEN] {
        &self.0
    }

    /// Views a byte slice whose length is a multiple of 100 as records (no copy).
    pub fn slice_from_bytes(bytes: &[u8]) -> Option<&[Record]> {
        if !bytes.len().is_multiple_of(RECORD_LEN) {
            return None;
        }
        // SAFETY: Record is repr(transparent) over [u8; 100] (alignment 1, no invalid bit
        // patterns) and the length is a whole number of records.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<Record>(), bytes.len() / RECORD_LEN) })
    }

    /// Views records as their bytes (no copy).
    pub fn slice_as_bytes(records: &[Record]) -> &[u8] {
        // SAFETY: see `slice_from_bytes`; every byte of a record is initialised.
        unsafe { std::slice::from_raw_parts(records.as_ptr().cast::<u8>(), std::mem::size_of_val(records)) }
    }

    /// Views records as mutable bytes, e.g. to read a file straight into them.
    pub fn slice_as_bytes_mut(records: &mut [Record]) -> &mut [u8] {
        let len = std::mem::size_of_val(records);
        // SAFETY: as above; any byte pattern is a valid record.
        unsafe { std::slice::from_raw_parts_mut(records.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Turns a vector of records into its bytes without copying.
    pub fn vec_into_bytes(records: Vec<Record>) -> Vec<u8> {
        let mut records = std::mem::ManuallyDrop::new(records);
        let (ptr, len, cap) = (records.as_mut_ptr(), records.len(), records.capacity());
        // SAFETY: same allocation, alignment 1 on both sides, sizes scaled by RECORD_LEN.
        unsafe { Vec::from_raw_parts(ptr.cast::<u8>(), len * RECORD_LEN, cap * RECORD_LEN) }
    }

    /// A vector of `n` zeroed records, ready to be read into.
    pub fn zeroed_vec(n: usize) -> Vec<Record> {
        vec![Record([0; RECORD_LEN]); n]
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Record(key=")?;
        for b in &self.0[..KEY_LEN] {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{RECORD_LEN} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Record, E> {
                let bytes: [u8; RECORD_LEN] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Record(bytes))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                let mut bytes = [0u8; RECORD_LEN];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Record(bytes))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

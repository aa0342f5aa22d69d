//! What a sort counts in its memory budget against what it allocates: a sort of words by
//! (length, longest first; then the word), the rows and keys decoded beside their Arrow
//! batches, must not allocate more than it told the pool. Its own test binary: the
//! allocator below counts every allocation of the process, and this is the only test in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::Reverse;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringleader_core::data::encode;
use ringleader_core::memory::{MemoryPool, scope};
use ringleader_core::shuffle::{Side, SidePart};

/// The system allocator, counting the bytes allocated now and the most at any time.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The key: longest first, then the word.
#[allow(clippy::ptr_arg)] // a sort key of `String` rows takes `&String`
fn longest_first(word: &String) -> (Reverse<usize>, String) {
    (Reverse(word.len()), word.clone())
}

/// Sorts `side` by `F` as the job API's `sort_by_key` does, and checks the rows against
/// `want` a chunk at a time (the sorted rows are not gathered again): whether they agree.
fn sort_by<K: ringleader_core::data::Data + Ord, F: Fn(&String) -> K + 'static>(
    _: F,
    side: Side,
    want: &[String],
) -> bool {
    // SAFETY: `F` is a function item's type (zero sized, `Copy`), as the job API checks.
    let sorted = unsafe { ringleader_core::ops::reduce::sort::<String, K, F>(&[], vec![side]) }.expect("sort");
    let mut seen = 0;
    for chunk in sorted {
        let rows = chunk.expect("chunk").into_rows::<String>().expect("rows");
        if want.get(seen..seen + rows.len()) != Some(&rows[..]) {
            return false;
        }
        seen += rows.len();
    }
    seen == want.len()
}

#[test]
fn a_sort_of_words_allocates_no_more_than_it_counts_in_its_budget() {
    // 300,000 words of 1 to 12 letters, in batches as a shuffle hands them over.
    let words: Vec<String> = (0..300_000u64)
        .map(|i| {
            let n = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let len = 1 + (n % 12) as usize;
            (0..len).map(|j| (b'a' + ((n >> (j * 5)) % 26) as u8) as char).collect()
        })
        .collect();
    let batches: Vec<_> = words.chunks(10_000).map(|c| encode(c).expect("encode")).collect();
    let arrow: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let side = Side {
        parts: vec![SidePart::Blocks(Box::new(batches.into_iter().map(Ok)))],
    };
    let mut want = words;
    want.sort_by_key(longest_first);
    let pool = MemoryPool::new(1 << 30, std::env::temp_dir());
    let before = NOW.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let agrees = scope(pool.clone(), || sort_by(longest_first, side, &want));
    let allocated = PEAK.load(Ordering::Relaxed) - before;
    assert!(agrees, "the sort's order differs from the standard library's");
    // The Arrow batches were allocated before the count started; the sort counts them too.
    let took = allocated + arrow;
    assert!(
        took <= pool.peak(),
        "the sort took {took} bytes ({arrow} of them its Arrow batches) and counted {} in its budget",
        pool.peak()
    );
}

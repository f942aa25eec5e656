#![allow(clippy::result_large_err)] // CIDs in errors: see src/lib.rs
//! Content-defined chunking re-uses blocks across an edit in the middle of a
//! file; fixed-size chunking does not. Prints the measured dedup ratios.

mod common;

use cairn::block::RAW;
use cairn::dag::builder::{build_file, ImportOptions};
use std::collections::HashSet;

fn leaves(data: &[u8], opts: &ImportOptions) -> Vec<(cid::Cid, usize)> {
    let mut out = vec![];
    build_file(data, opts, &mut |b| {
        if b.cid().codec() == RAW {
            out.push((*b.cid(), b.data().len()));
        }
        Ok(())
    })
    .unwrap();
    out
}

/// Share of the edited file's bytes that live in blocks the original has.
fn reused_share(original: &[u8], edited: &[u8], opts: &ImportOptions) -> f64 {
    let before: HashSet<cid::Cid> = leaves(original, opts).into_iter().map(|l| l.0).collect();
    let after = leaves(edited, opts);
    let total: usize = after.iter().map(|l| l.1).sum();
    let reused: usize = after
        .iter()
        .filter(|l| before.contains(&l.0))
        .map(|l| l.1)
        .sum();
    reused as f64 / total as f64
}

#[test]
fn cdc_reuses_almost_all_blocks_after_a_middle_insert() {
    let original = common::random_bytes(32 * 1024 * 1024, 42);
    let mut edited = original.clone();
    let mid = original.len() / 2 + 12345;
    edited.splice(
        mid..mid,
        b"an insertion of a few bytes in the middle".iter().copied(),
    );

    let cdc = ImportOptions {
        chunker: "cdc-65536-262144-1048576".parse().unwrap(),
        ..ImportOptions::default()
    };
    let fixed = ImportOptions::default();
    let cdc_share = reused_share(&original, &edited, &cdc);
    let fixed_share = reused_share(&original, &edited, &fixed);
    println!(
        "dedup after a middle insert in 32 MiB: cdc reuses {:.2}% of bytes, fixed-size {:.2}%",
        cdc_share * 100.0,
        fixed_share * 100.0
    );
    assert!(cdc_share > 0.97, "cdc reused only {cdc_share}");
    assert!(
        fixed_share < 0.6,
        "fixed-size unexpectedly reused {fixed_share}"
    );
}

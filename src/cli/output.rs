//! How results are printed: the text each command writes, the same whether
//! a daemon answered or the repo was read directly.

use anyhow::{bail, Result};
use cairn::rpc::types;
use std::io::Write;

/// `stats bw` output, as Kubo prints it.
pub(super) fn print_bw(out: &mut dyn Write, v: &types::BandwidthStats) -> Result<()> {
    writeln!(out, "Bandwidth")?;
    writeln!(out, "TotalIn: {}", v.total_in)?;
    writeln!(out, "TotalOut: {}", v.total_out)?;
    writeln!(out, "RateIn: {:.0} B/s", v.rate_in)?;
    writeln!(out, "RateOut: {:.0} B/s", v.rate_out)?;
    Ok(())
}

/// What an index rebuild found, in one line.
pub(super) fn rebuilt(r: &cairn::store::RebuildReport) -> String {
    format!(
        "{} blocks ({} bytes) from {} segments, {} corrupt records left out, {} bytes skipped",
        r.blocks, r.block_bytes, r.segments, r.corrupt, r.skipped_bytes
    )
}

pub(super) fn print_repo_stat(out: &mut dyn Write, st: &types::RepoStatResponse) -> Result<()> {
    if !st.repo_path.is_empty() {
        writeln!(out, "RepoPath:     {}", st.repo_path)?;
    }
    writeln!(out, "NumObjects:   {}", st.num_objects)?;
    writeln!(out, "BlockBytes:   {}", st.block_bytes)?;
    writeln!(out, "RepoSize:     {}", st.repo_size)?;
    writeln!(out, "Pins:         {}", st.pins)?;
    writeln!(out, "Segments:     {}", st.num_segments)?;
    let share = if st.repo_size == 0 {
        1.0
    } else {
        st.block_bytes as f64 / st.repo_size as f64
    };
    writeln!(out, "LiveShare:    {:.1}%", share * 100.0)?;
    for seg in &st.segments {
        let pct = if seg.file_bytes == 0 {
            100.0
        } else {
            seg.live_bytes as f64 * 100.0 / seg.file_bytes as f64
        };
        writeln!(
            out,
            "  segment {:08}: {} of {} bytes live ({pct:.1}%), {} bytes held",
            seg.id, seg.live_bytes, seg.file_bytes, seg.data_bytes
        )?;
    }
    Ok(())
}

pub(super) fn print_verify(out: &mut dyn Write, r: &types::VerifyResponse) -> Result<()> {
    for cid in &r.corrupt {
        writeln!(out, "corrupt block {cid}")?;
    }
    for (cid, why) in &r.unreadable {
        writeln!(out, "unreadable block {cid}: {why}")?;
    }
    for (cid, why) in &r.broken_pins {
        writeln!(out, "incomplete pin {cid}: {why}")?;
    }
    let bad = r.corrupt.len() + r.unreadable.len() + r.broken_pins.len();
    if bad > 0 {
        bail!("verify found {bad} problems in {} blocks", r.checked);
    }
    writeln!(out, "verified {} blocks: all good", r.checked)?;
    Ok(())
}

/// `pin status` as text, like `ipfs-cluster-ctl status`.
pub(super) fn print_pin_status(out: &mut dyn Write, v: &types::PinStatus) -> Result<()> {
    let pinned = v.holders.iter().filter(|h| h.state == "pinned").count();
    writeln!(
        out,
        "{}: {} ({pinned}/{} pinned, max {})",
        v.cid, v.state, v.factor, v.max
    )?;
    for h in &v.holders {
        let since = h
            .since
            .map(|t| {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
                format!(" since {}", humantime::format_rfc3339_seconds(at))
            })
            .unwrap_or_default();
        writeln!(out, "    > {} : {}{since}", h.peer, h.state.to_uppercase())?;
    }
    Ok(())
}
